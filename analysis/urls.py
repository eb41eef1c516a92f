"""HTML pages for runs, under /projects/<id>/runs/: the run list and run page, the new-analysis form, and the
workspace of a run (Analysis, a neuron's page, Ablation, Manipulation, downloads)."""

from django.urls import path

from .views import ablation, downloads, explore, manipulation, neuron, new_run, runs

app_name = "analysis"

urlpatterns = [
    path("<int:pk>/runs/", runs.run_list, name="run-list"),
    path("<int:pk>/runs/new/", new_run.new_run, name="run-new"),
    path("<int:pk>/runs/<int:run_id>/", runs.run_detail, name="run-detail"),
    path("<int:pk>/runs/<int:run_id>/cancel/", runs.run_cancel, name="run-cancel"),
    path("<int:pk>/runs/<int:run_id>/retry/", runs.run_retry, name="run-retry"),
    path("<int:pk>/runs/<int:run_id>/analysis/", explore.analysis, name="run-analysis"),
    path("<int:pk>/runs/<int:run_id>/neurons/<str:neuron>/", neuron.neuron_page, name="run-neuron"),
    path("<int:pk>/runs/<int:run_id>/ablation/", ablation.ablation, name="run-ablation"),
    path("<int:pk>/runs/<int:run_id>/manipulation/", manipulation.manipulation, name="run-manipulation"),
    path("<int:pk>/runs/<int:run_id>/downloads/", downloads.downloads, name="run-downloads"),
]

urlpatterns += [
    path("<int:pk>/runs/<int:run_id>/neurons/<str:neuron>/correlations/", neuron.neuron_correlations,
         name="run-neuron-correlations"),
]

urlpatterns += [
    path("<int:pk>/runs/<int:run_id>/downloads/<int:step_id>/<str:name>", downloads.download, name="run-download"),
]
