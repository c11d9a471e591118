// Sortable lists: every column header of a list (table.list) becomes a button; a click sorts
// the rows by that column (numbers as numbers), again reverses. A file of its own: the
// Content-Security-Policy runs no inline script.
(function () {
  "use strict";
  function key(cell) {
    var text = (cell ? cell.textContent : "").trim();
    var number = parseFloat(text.replace(/[^0-9.\-]/g, ""));
    return /^-?[0-9.,]+( ?[a-zA-Z%]*)?$/.test(text) && !isNaN(number) ? number : text.toLowerCase();
  }
  document.querySelectorAll("table.list").forEach(function (table) {
    var body = table.tBodies[0];
    if (!table.tHead || !body || body.rows.length < 2) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var label = th.textContent.trim();
      if (!label) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.textContent = label;
      th.textContent = "";
      th.appendChild(button);
      button.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
          other.removeAttribute("aria-sort");
        });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[index]), y = key(b.cells[index]);
          var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
                                            : (typeof x === "number" ? -1 : 1);
          return up ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
