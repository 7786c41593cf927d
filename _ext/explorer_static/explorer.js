/* The explorer page: a precomputed class activation map drawn over its image, as camcore.overlay
   draws it (bilinear upsampling with half-pixel centres, renormalised to [0, 1], OpenCV's jet
   colours, blended with alpha). The data is the JSON of scripts/explorer.py, inside the page
   (_ext/explorer.py). No network, no library. */
"use strict";

(function () {
  const SIZE = 224;  // the classifier's input: the images and the overlay

  function bytes(b64) {
    const text = atob(b64);
    return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
  }

  // For each of N output positions: the two input positions (of n) and the weight of the second.
  function axis(n, N) {
    return Array.from({ length: N }, (_, i) => {
      const s = (i + 0.5) * (n / N) - 0.5, f = Math.floor(s);
      return [Math.max(f, 0), Math.min(Math.ceil(s), n - 1), s - f];
    });
  }

  // An h x w map (8-bit values) upsampled to H x W and renormalised to [0, 1] (zeros if flat).
  function heatmap(values, h, w, H, W) {
    const out = new Float32Array(H * W), ys = axis(h, H), xs = axis(w, W);
    for (let Y = 0; Y < H; Y++) {
      const [y0, y1, ty] = ys[Y];
      for (let X = 0; X < W; X++) {
        const [x0, x1, tx] = xs[X];
        const top = values[y0 * w + x0] * (1 - tx) + values[y0 * w + x1] * tx;
        const bottom = values[y1 * w + x0] * (1 - tx) + values[y1 * w + x1] * tx;
        out[Y * W + X] = (top * (1 - ty) + bottom * ty) / 255;
      }
    }
    let low = Infinity, high = -Infinity;
    for (const v of out) { low = Math.min(low, v); high = Math.max(high, v); }
    const span = high - low, flat = span <= 1e-6 * Math.max(Math.abs(high), Math.abs(low));
    return out.map((v) => (flat ? 0 : (v - low) / span));
  }

  function element(tag, attributes, ...children) {
    const node = Object.assign(document.createElement(tag), attributes);
    node.append(...children);
    return node;
  }

  function build(root) {
    const data = JSON.parse(root.querySelector(".cx-data").textContent);
    const colours = bytes(data.overlay.colours), alpha = data.overlay.alpha;
    const state = { image: 0, method: "Grad-CAM", layer: 0, rank: 0 };
    const pixels = data.images.map(() => null);  // each image's RGBA, once decoded
    const name = (m) => (m === "Score-CAM" && data.score_cam !== "every channel"
      ? `Score-CAM (${data.score_cam})` : m);

    const overlay = element("canvas", { width: SIZE, height: SIZE, className: "cx-overlay" });
    const cells = element("canvas", { className: "cx-cells" });
    const probabilities = element("div", { className: "cx-probabilities" });
    const caption = element("p", { className: "cx-caption" });
    caption.setAttribute("aria-live", "polite");
    const groups = {};
    function group(key, label, items, title) {
      const buttons = items.map(([value, content]) => {
        const b = element("button", { type: "button", className: "cx-choice" }, content);
        b.dataset.value = value;
        b.addEventListener("click", () => { state[key] = value; show(); });
        return b;
      });
      groups[key] = buttons;
      return element("div", { className: `cx-group cx-${key}`, title: title || "" },
        element("span", { className: "cx-label" }, label), ...buttons);
    }
    const thumbs = data.images.map((im, i) => [i, element("img", {
      src: im.image, alt: `test image ${i + 1}: ${data.class_names[im.label]}`,
      title: `${data.class_names[im.label]} (${im.file})` })]);
    root.replaceChildren(
      group("image", "Image", thumbs),
      group("method", "Method", data.methods.map((m) => [m, name(m)])),
      group("layer", "Layer", data.layers.map((l, i) => [i, l.key.replace("x", "×")])),
      group("rank", "Class", data.ranks.map((r, i) => [i, r])),
      element("div", { className: "cx-view" },
        element("figure", {}, overlay, element("figcaption", {}, "the map over the image")),
        element("figure", {}, cells, element("figcaption", { className: "cx-cells-caption" })),
        probabilities),
      caption);

    function draw() {
      const im = data.images[state.image], layer = data.layers[state.layer];
      const [h, w] = layer.shape;
      const values = bytes(im.maps[layer.key][state.method][state.rank]);
      cells.width = w; cells.height = h;  // the map as computed, one pixel a cell (CSS enlarges)
      const small = cells.getContext("2d").createImageData(w, h);
      values.forEach((v, i) => { small.data.set(colours.subarray(3 * v, 3 * v + 3), 4 * i);
        small.data[4 * i + 3] = 255; });
      cells.getContext("2d").putImageData(small, 0, 0);
      root.querySelector(".cx-cells-caption").textContent =
        `the map as computed: ${h}×${w} numbers`;
      const heat = heatmap(values, h, w, SIZE, SIZE), base = pixels[state.image];
      const out = overlay.getContext("2d").createImageData(SIZE, SIZE);
      heat.forEach((v, i) => {
        const c = 3 * Math.round(255 * v);
        for (let k = 0; k < 3; k++) {
          out.data[4 * i + k] = Math.round((1 - alpha) * base[4 * i + k] + alpha * colours[c + k]);
        }
        out.data[4 * i + 3] = 255;
      });
      overlay.getContext("2d").putImageData(out, 0, 0);
      const empty = values.every((v) => v === 0), c = im.classes[state.rank];
      const pole = im.pole_share[layer.key][state.rank];
      const unstable = state.method === "Grad-CAM++" && pole > data.pole_share_limit;
      caption.textContent = `${name(state.method)} at the ${layer.key.replace("x", "×")} layer ` +
        `(${layer.name}, ${layer.channels} channels), for the class ${data.class_names[c]} ` +
        `(${data.ranks[state.rank]}, p = ${(100 * im.probabilities[c]).toFixed(1)} %); ` +
        `true class: ${data.class_names[im.label]}.` + (empty ? " This map is empty (all " +
        "zeros): no position carries positive evidence for this class at this layer." : "") +
        (unstable ? ` Not stable: ${Math.round(100 * pole)} % of this map's weight comes from ` +
        "terms near the pole of Grad-CAM++'s γ (this layer's activations are signed), which " +
        "float32 rounding moves." : "");
    }

    function show() {
      const im = data.images[state.image], layer = data.layers[state.layer];
      for (const [key, buttons] of Object.entries(groups)) {
        for (const b of buttons) {
          b.setAttribute("aria-pressed", String(b.dataset.value === String(state[key])));
        }
      }
      for (const b of groups.method) b.disabled = !layer.methods.includes(b.dataset.value);
      for (const b of groups.layer) {
        b.disabled = !data.layers[b.dataset.value].methods.includes(state.method);
        b.title = b.disabled ? `${state.method} is defined at the last layer only` : "";
      }
      groups.rank.forEach((b, r) => {
        const c = im.classes[r];
        b.textContent = `${data.ranks[r]}: ${data.class_names[c]}`;
      });
      probabilities.replaceChildren(...data.class_names.map((n, c) => {
        const p = im.probabilities[c], row = element("div", { className: "cx-prob" },
          element("span", { className: "cx-name" }, n + (c === im.label ? " (true)" : "")),
          element("span", { className: "cx-bar" }, element("span", {})),
          element("span", { className: "cx-value" }, `${(100 * p).toFixed(1)} %`));
        row.dataset.class = n;
        row.querySelector(".cx-bar span").style.width = `${100 * p}%`;
        row.classList.toggle("cx-explained", c === im.classes[state.rank]);
        return row;
      }));
      if (pixels[state.image]) {
        draw();
        return;
      }
      const i = state.image, img = new Image();
      img.src = im.image;
      img.decode().then(() => {
        const scratch = element("canvas", { width: SIZE, height: SIZE }).getContext("2d");
        scratch.drawImage(img, 0, 0, SIZE, SIZE);
        pixels[i] = scratch.getImageData(0, 0, SIZE, SIZE).data;
        if (state.image === i) show();  // unless another image was picked meanwhile
      });
    }
    show();
  }

  function start() {
    document.querySelectorAll(".camcore-explorer").forEach(build);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
