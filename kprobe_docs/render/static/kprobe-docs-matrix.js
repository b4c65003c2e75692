// The compatibility matrix: choose the columns by architecture and kernel version.
// Every cell of a target's column carries the classes kd-arch-<arch> and kd-kernel-<major>-<minor>;
// the page reads the same without this script, with every column shown.
"use strict";

function kdValues(table, prefix) {
  const found = new Set();
  for (const cell of table.querySelectorAll("thead .kd-col")) {
    for (const name of cell.classList) {
      if (name.startsWith(prefix)) found.add(name.slice(prefix.length));
    }
  }
  return [...found];
}

function kdSelect(text, values, shown) {
  const label = document.createElement("label");
  const select = document.createElement("select");
  label.append(text + " ", select);
  for (const value of ["", ...values]) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value === "" ? "all" : shown(value);
    select.append(option);
  }
  return [label, select];
}

function kdFilter(table) {
  const version = (v) => v.split("-").map(Number);  // "6-12": [6, 12]
  const byKernel = (a, b) => version(a)[0] - version(b)[0] || version(a)[1] - version(b)[1];
  const [archLabel, arch] = kdSelect("Architecture", kdValues(table, "kd-arch-").sort(), (v) => v);
  const [kernelLabel, kernel] = kdSelect("Kernel", kdValues(table, "kd-kernel-").sort(byKernel),
    (v) => v.replace("-", "."));
  const form = document.createElement("form");
  form.className = "kd-matrix-filter";
  form.append(archLabel, " ", kernelLabel);
  form.addEventListener("submit", (event) => event.preventDefault());
  const apply = () => {
    for (const cell of table.querySelectorAll(".kd-col")) {
      const off = (arch.value && !cell.classList.contains("kd-arch-" + arch.value))
        || (kernel.value && !cell.classList.contains("kd-kernel-" + kernel.value));
      cell.classList.toggle("kd-off", Boolean(off));
    }
  };
  arch.addEventListener("change", apply);
  kernel.addEventListener("change", apply);
  const wrapper = table.closest(".table-wrapper") || table;
  wrapper.before(form);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.kd-matrix")) kdFilter(table);
});
