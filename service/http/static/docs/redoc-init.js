// ReDoc for /openapi.json; a file (not an inline script) for the Content-Security-Policy.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  Redoc.init(new URL("openapi.json", document.baseURI).href, {}, document.getElementById("redoc"));
});
