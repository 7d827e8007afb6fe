// Building DOM and SVG nodes.

const SVG_NS = "http://www.w3.org/2000/svg";
const DOM_PROPS = new Set(["value", "checked", "disabled", "hidden", "selected"]);

/** An HTML element: `text`, `class`, `on<event>` handlers, DOM properties, else attributes. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (DOM_PROPS.has(key)) node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c != null));
  return node;
}

/** An SVG element; attributes that are null are left out. */
export function s(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value != null) node.setAttribute(key, String(value));
  if (text != null) node.textContent = text;
  return node;
}

/** SVG text at (x, y); `anchor` is "start", "middle" or "end". */
export function label(x, y, text, anchor = "start", cls = null) {
  return s("text", { class: cls, x, y, "text-anchor": anchor }, text);
}

export function titled(node, text) {
  node.append(s("title", {}, text));
  return node;
}

export function debounced(fn, ms) {
  let timer = 0;
  const call = () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
  call.cancel = () => clearTimeout(timer);
  return call;
}
