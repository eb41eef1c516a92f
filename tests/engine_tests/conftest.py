import pytest


@pytest.fixture
def one_torch_thread():
    """Probe training on one thread: on a shared 2-core machine two threads are several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
