// The Ablation view's PNG download: draws a chart's SVG (already on the page) onto a canvas at twice its size
// and saves the canvas as a PNG. No library: the SVG carries its own styles, so it renders the same in an image.
(function () {
  "use strict";

  function say(button, text) {
    var status = button.parentNode.querySelector(".ablation-png-status");
    if (status) status.textContent = text;
  }

  function savePng(button) {
    var svg = document.getElementById(button.dataset.pngChart);
    if (!svg) { say(button, "The chart is not on the page any more; choose it again."); return; }
    var width = svg.viewBox.baseVal.width, height = svg.viewBox.baseVal.height, scale = 2;
    var copy = svg.cloneNode(true);
    copy.setAttribute("width", width);
    copy.setAttribute("height", height);
    var text = new XMLSerializer().serializeToString(copy);
    var image = new Image();
    image.onload = function () {
      var canvas = document.createElement("canvas");
      canvas.width = width * scale;
      canvas.height = height * scale;
      var context = canvas.getContext("2d");
      context.scale(scale, scale);
      context.drawImage(image, 0, 0, width, height);
      canvas.toBlob(function (blob) {
        if (!blob) { say(button, "This browser could not make a PNG; download the SVG instead."); return; }
        var link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = button.dataset.pngName || "chart.png";
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
        say(button, "PNG saved.");
      }, "image/png");
    };
    image.onerror = function () { say(button, "This browser could not draw the chart; download the SVG instead."); };
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(text);
  }

  // delegated, so charts swapped in by htmx work too
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-png-chart]");
    if (button) savePng(button);
  });
})();
