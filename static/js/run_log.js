// The run page's live log.
// - Every connect and reconnect of the websocket says which line the page already has (?after=N), so the
//   consumer sends every line written since, however long the socket was down (analysis/consumers.py).
// - The log box follows new lines while the reader is at its bottom; scrolled up, it stays put.
(() => {
  const lastSeq = () => {
    const lines = document.querySelectorAll("#run-log li[value]");
    return lines.length ? Number(lines[lines.length - 1].getAttribute("value")) : 0;
  };
  const createWebSocket = htmx.createWebSocket;
  htmx.createWebSocket = (url) => {
    const resumed = new URL(url, window.location.href);
    if (resumed.pathname.startsWith("/ws/runs/")) resumed.searchParams.set("after", String(lastSeq()));
    return createWebSocket(resumed.toString());
  };

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
