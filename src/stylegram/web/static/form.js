// The form, built from the fields /api/info lists for a kind (the server derives them from the options
// dataclass, so a new option appears here by itself): a slider for the style strength, buttons for the
// library's presets and for three sizes, every other field under "Advanced". Only what differs from the
// default is sent.

const $ = (id) => document.getElementById(id);
// Shown above "Advanced" as a slider when the options class has it; presets come from the server.
const STRENGTH_FIELD = "style_strength";
const SIZES = [["small", 256], ["medium", 512], ["large", 1024]];

export const form = { info: null, kind: null, inputs: new Map(), matchPresets: null };

function defaultText(f) {
  if (f.default === null || f.default === undefined) return "";
  return Array.isArray(f.default) ? f.default.join(",") : String(f.default);
}

function makeInput(f) {
  let input;
  if (f.kind === "bool" && !f.list) {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = f.default === true;
  } else if (f.choices && !f.list) {
    input = document.createElement("select");
    for (const choice of (f.optional ? ["", ...f.choices] : f.choices)) {
      input.append(new Option(choice || "automatic", choice));
    }
  } else {
    input = document.createElement("input");
    const numeric = (f.kind === "int" || f.kind === "float") && !f.list;
    input.type = numeric ? "number" : "text";
    if (numeric) {
      input.step = f.kind === "int" ? "1" : "any";
      if (f.min !== null) input.min = f.min;
      if (f.max !== null) input.max = f.max;
    }
    input.placeholder = f.default === null ? "automatic" : defaultText(f);
  }
  input.id = "opt-" + f.name;
  input.name = f.name;
  setValue(f, input, f.default);
  return input;
}

function setValue(f, input, value) {
  if (input.type === "checkbox") { input.checked = value === true; return; }
  input.value = value === null || value === undefined ? "" : Array.isArray(value) ? value.join(",") : String(value);
}

function valueText(f, input) {
  return input.type === "checkbox" ? String(input.checked) : input.value.trim();
}

export function buildForm() {
  const kind = form.kind;
  const fields = $("fields");
  fields.replaceChildren();
  form.inputs.clear();
  $("strength-holder").replaceChildren();
  $("strength-row").hidden = true;
  for (const f of kind.options) {
    const input = makeInput(f);
    form.inputs.set(f.name, { field: f, input });
    if (f.name === STRENGTH_FIELD && !f.list && f.kind === "float") { strengthSlider(f, input); continue; }
    const box = document.createElement("div");
    box.className = "field" + (input.type === "checkbox" ? " check" : "");
    const label = document.createElement("label");
    label.htmlFor = input.id;
    label.textContent = f.name.replaceAll("_", " ");
    if (input.type === "checkbox") label.prepend(input);
    const help = document.createElement("small");
    help.textContent = f.help + (f.max !== null && !f.list && f.kind !== "bool" ? ` (at most ${f.max})` : "");
    box.append(label, ...(input.type === "checkbox" ? [] : [input]), help);
    fields.append(box);
  }
  presetChoices();
  sizeChoices();
  $("style-count-hint").textContent = `(${kind.min_styles}–${kind.max_styles})`;
  $("drop-style").hidden = kind.max_styles === 0;
}

function strengthSlider(f, input) {
  // The style strength (a number in bounds) as a slider with its value beside it.
  $("strength-row").hidden = false;
  input.type = "range";
  input.min = f.min ?? 0;
  input.max = f.max ?? 1;
  input.step = "0.05";
  setValue(f, input, f.default);
  const shown = document.createElement("output");
  shown.htmlFor = input.id;
  const update = () => { shown.textContent = Number(input.value).toFixed(2); };
  input.addEventListener("input", update);
  input.addEventListener("change", update);
  update();
  $("strength-holder").append(input, shown);
}

function presetChoices() {
  // The library's presets, as buttons that set their fields (and put the other presets' fields back).
  const presets = form.kind.presets || {};
  const holder = $("preset-choices");
  holder.replaceChildren();
  $("preset-row").hidden = Object.keys(presets).length === 0;
  const touched = new Set(Object.values(presets).flatMap((values) => Object.keys(values)));
  const matching = () => {
    for (const b of holder.querySelectorAll("button")) {
      const values = presets[b.dataset.value];
      const same = [...touched].every((name) => {
        const entry = form.inputs.get(name);
        if (!entry) return true;
        const wanted = name in values ? values[name] : entry.field.default;
        return valueText(entry.field, entry.input) === defaultText({ default: wanted });
      });
      b.setAttribute("aria-pressed", String(same));
    }
  };
  for (const name of Object.keys(presets)) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = name;
    b.dataset.value = name;
    b.addEventListener("click", () => {
      for (const field of touched) {
        const entry = form.inputs.get(field);
        if (!entry) continue;
        setValue(entry.field, entry.input, field in presets[name] ? presets[name][field] : entry.field.default);
        entry.input.dispatchEvent(new Event("change"));
      }
      matching();
    });
    holder.append(b);
  }
  for (const { input } of form.inputs.values()) {
    input.addEventListener("input", matching);
    input.addEventListener("change", matching);
  }
  form.matchPresets = matching;
  matching();
}

function sizeChoices() {
  const holder = $("size-choices");
  holder.replaceChildren();
  const size = form.inputs.get("size");
  $("size-row").hidden = !size;
  if (!size) return;
  const top = form.info.limits.max_size;
  for (const [name, px] of SIZES) {
    const value = Math.min(px, top);
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${name} · ${value} px`;
    b.dataset.value = String(value);
    b.addEventListener("click", () => { size.input.value = String(value); pressed(holder, value); });
    holder.append(b);
  }
  pressed(holder, size.input.value);
  size.input.addEventListener("input", () => pressed(holder, size.input.value));
}

export function changedOptions() {
  // Only what differs from the default is sent: the server fills in the rest from the same declarations.
  const out = {};
  for (const [name, { field, input }] of form.inputs) {
    const text = valueText(field, input);
    if (text !== defaultText(field)) out[name] = text;
  }
  return out;
}

export function applyOptions(kindName, options) {
  const kind = form.info.kinds.find((k) => k.name === kindName) || form.kind;
  if (kind !== form.kind) { form.kind = kind; $("kind").value = kind.name; buildForm(); }
  for (const [name, { field, input }] of form.inputs) {
    setValue(field, input, name in options ? options[name] : field.default);
    input.dispatchEvent(new Event("change"));
    input.dispatchEvent(new Event("input"));
  }
  if (form.matchPresets) form.matchPresets();
  $("advanced").open = true;
}
