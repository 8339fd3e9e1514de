// Starts ReDoc on /redoc; see swagger-init.js for why this is not an inline script.
//
// ReDoc's sidebar footer shows Redocly's logo from cdn.redoc.ly, with no option to turn it off.
// Our CSP would block it, with a console error on every load; so the one image source ReDoc
// hard-codes is swapped for an empty data: URL, whose load error makes ReDoc drop the image
// (its own onError does that). The "API docs by Redocly" link stays.
const REDOCLY_CDN = "https://cdn.redoc.ly/";
const local = (value) => (String(value).startsWith(REDOCLY_CDN) ? "data:," : value);
const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
Object.defineProperty(HTMLImageElement.prototype, "src", {
  ...src,
  set(value) {
    src.set.call(this, local(value));
  },
});
const setAttribute = Element.prototype.setAttribute;
Element.prototype.setAttribute = function (name, value) {
  const img = this instanceof HTMLImageElement && name.toLowerCase() === "src";
  return setAttribute.call(this, name, img ? local(value) : value);
};

const root = document.getElementById("redoc");
Redoc.init(root.dataset.openapiUrl, { expandResponses: "200" }, root);
