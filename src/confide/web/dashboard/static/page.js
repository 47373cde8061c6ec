// Small enhancements for the server-rendered pages. Every page works without this module;
// it only makes things nicer (local times, tidy filter URLs, copy buttons, the row editors).

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

// Times are rendered in UTC by the server; show them in the reader's own time zone.
for (const el of document.querySelectorAll('time[data-local]')) {
  const t = Date.parse(el.getAttribute('datetime') || '');
  if (!Number.isNaN(t)) el.textContent = dateTime.format(new Date(t));
}

// Filter forms: leave empty fields out of the URL.
for (const form of document.querySelectorAll('form[data-clean-get]')) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form)) {
      if (typeof value === 'string' && value.trim() !== '') params.append(key, value.trim());
    }
    const query = params.toString();
    location.assign(form.getAttribute('action') + (query ? `?${query}` : ''));
  });
}

// Buttons that need a second click (no window.confirm: it blocks, and it looks foreign).
for (const button of document.querySelectorAll('button[data-confirm]')) {
  const label = button.textContent;
  let timer = null;
  button.addEventListener('click', (event) => {
    if (button.hasAttribute('data-confirming')) return; // second click: submit
    event.preventDefault();
    button.setAttribute('data-confirming', '');
    button.textContent = button.dataset.confirm;
    clearTimeout(timer);
    timer = setTimeout(() => {
      button.removeAttribute('data-confirming');
      button.textContent = label;
    }, 4000);
  });
}

// Copy buttons: data-copy="id of an input or element".
for (const button of document.querySelectorAll('button[data-copy]')) {
  button.addEventListener('click', async () => {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = 'value' in source ? source.value : source.textContent;
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      if (typeof source.select === 'function') {
        source.select();
        ok = document.execCommand('copy');
      }
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = ok ? 'Copied ✓' : 'Press Ctrl+C';
    setTimeout(() => { button.textContent = label; }, 2000);
  });
}

// Row editors (pre-chat fields, consent purposes): add, move, mark for removal; names are
// renumbered so that the server reads the rows in the order shown.
for (const section of document.querySelectorAll('[data-rows]')) {
  const prefix = section.dataset.rows;
  const body = section.querySelector('[data-row-body]');
  const template = section.querySelector('template[data-row-template]');
  const count = section.querySelector('[data-row-count]');
  const pattern = new RegExp(`^${prefix}-(\\d+|__i__)-`);

  const renumber = () => {
    [...body.querySelectorAll('[data-row]')].forEach((row, i) => {
      for (const input of row.querySelectorAll('[name]')) {
        input.name = input.name.replace(pattern, `${prefix}-${i}-`);
      }
    });
    count.value = String(body.querySelectorAll('[data-row]').length);
  };
  const wire = (row) => {
    const remove = row.querySelector('[data-row-remove]');
    if (remove) remove.addEventListener('change', () => row.classList.toggle('is-removed', remove.checked));
    row.querySelector('[data-row-up]')?.addEventListener('click', () => {
      const prev = row.previousElementSibling;
      if (prev) body.insertBefore(row, prev);
      renumber();
    });
    row.querySelector('[data-row-down]')?.addEventListener('click', () => {
      const next = row.nextElementSibling;
      if (next) body.insertBefore(next, row);
      renumber();
    });
    const type = row.querySelector('[data-field-type]');
    const options = row.querySelector('[data-field-options]');
    if (type && options) {
      const hint = options.placeholder;
      const sync = () => {
        options.disabled = type.value !== 'select';
        options.placeholder = options.disabled ? '' : hint;
      };
      type.addEventListener('change', sync);
      sync();
    }
  };
  body.querySelectorAll('[data-row]').forEach(wire);
  section.querySelector('[data-row-add]')?.addEventListener('click', () => {
    const row = template.content.firstElementChild.cloneNode(true);
    body.append(row);
    wire(row);
    renumber();
    row.querySelector('input')?.focus();
  });
}

// "Always open" switches the opening-hours inputs off.
for (const box of document.querySelectorAll('[data-always-open]')) {
  const hours = box.closest('fieldset')?.querySelector('[data-hours]');
  if (!hours) continue;
  const sync = () => {
    hours.classList.toggle('is-disabled', box.checked);
    for (const input of hours.querySelectorAll('input')) input.disabled = box.checked;
  };
  box.addEventListener('change', sync);
  sync();
}

// Colour inputs show their value.
for (const input of document.querySelectorAll('input[type="color"]')) {
  const label = input.parentElement?.querySelector('[data-color-value]');
  if (label) input.addEventListener('input', () => { label.textContent = input.value; });
}

// A settings form that failed or was just saved: bring it into view.
const anchor = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
const target = document.querySelector('form .flash-error') || anchor;
if (target) target.scrollIntoView({ block: 'center' });
