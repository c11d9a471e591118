// Starts the Swagger UI at /api/docs (flask-smorest's page did this in an inline script,
// which the Content-Security-Policy does not run): the document's URL and any extra
// settings come from the container's data attributes.
window.addEventListener("load", () => {
  const container = document.getElementById("swagger-ui-container");
  const config = Object.assign(
    { url: container.dataset.specUrl, dom_id: "#swagger-ui-container" },
    JSON.parse(container.dataset.config || "{}"),
  );
  window.ui = SwaggerUIBundle(config);
});
