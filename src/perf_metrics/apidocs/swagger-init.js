// Starts Swagger UI on /docs. A file of its own, not an inline script, so that the page runs
// under a Content-Security-Policy that allows scripts from this origin only.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  deepLinking: true,
  // Swagger UI's default sends the schema to validator.swagger.io for a badge: never.
  validatorUrl: null,
});
