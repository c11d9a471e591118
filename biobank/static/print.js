// "Print" buttons (data-print): a script file of our own, since the Content-Security-Policy
// runs no inline script (no onclick="...").
document.addEventListener("click", (event) => {
  if (event.target instanceof Element && event.target.closest("[data-print]")) {
    window.print();
  }
});
