// The run page's log box follows new lines while the reader is at its bottom; scrolled up, it stays put.
(() => {
  const box = document.querySelector(".run-log-scroll");
  if (!box) return;
  let following = true;
  box.addEventListener("scroll", () => {
    following = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  });
  const follow = () => { if (following) box.scrollTop = box.scrollHeight; };
  new MutationObserver(follow).observe(box, { childList: true, subtree: true });
  follow();
})();
