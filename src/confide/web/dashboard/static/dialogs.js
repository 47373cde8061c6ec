// The transfer and close dialogs of the open chat.

import { h } from './dom.js';
import { action } from './frames.js';
import { S, focusedChat } from './state.js';
import { notify, ui } from './ui.js';

async function openTransfer() {
  const chat = focusedChat();
  if (!chat || chat.ended) return;
  ui.transferTarget.replaceChildren(h('option', { value: '', text: 'Loading…' }));
  ui.transferTarget.disabled = true;
  ui.transferDialog.showModal();
  let operators = [];
  try {
    const response = await fetch('/api/v1/operators', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (response.ok) operators = await response.json();
  } catch {
    notify('Could not load the operators.', 'error');
  }
  const deptId = chat.conv.department && chat.conv.department.id;
  const ops = operators.filter((o) => S.me && o.id !== S.me.id && !o.disabled
    && o.takes_chats && (o.takes_any_department || (o.department_ids || []).includes(deptId)));
  const statusLabel = { online: 'online', away: 'away', offline: 'offline' };
  const opGroup = h('optgroup', { label: 'Operators' },
    ops.length ? ops.map((o) => h('option', { value: `operator:${o.id}`, text: `${o.name} (${statusLabel[o.status] || o.status})` }))
      : h('option', { value: '', disabled: true, text: 'No other operator in this department' }));
  const siteId = chat.conv.site && chat.conv.site.id;
  const depts = (S.transferDepartments.length ? S.transferDepartments : S.departments).filter((d) => !siteId || d.site_id === siteId);
  const deptGroup = h('optgroup', { label: 'Departments (back to the queue)' },
    depts.map((d) => h('option', { value: `department:${d.id}`, text: d.id === deptId ? `${d.name} (current)` : d.name })));
  ui.transferTarget.replaceChildren(h('option', { value: '', text: 'Choose an operator or a department…' }), opGroup, deptGroup);
  ui.transferTarget.disabled = false;
  ui.transferTarget.focus();
}

function submitTransfer(event) {
  event.preventDefault();
  const chat = focusedChat();
  const value = ui.transferTarget.value;
  if (!chat || !value) {
    ui.transferTarget.focus();
    return;
  }
  const [kind, id] = value.split(':');
  const label = ui.transferTarget.selectedOptions[0] ? ui.transferTarget.selectedOptions[0].textContent.replace(/ \((current|online|away|offline)\)$/, '') : '';
  chat.transferLabel = label;
  const frame = { type: 'transfer', conversation_id: chat.id };
  frame[kind === 'operator' ? 'operator_id' : 'department_id'] = id;
  if (action('transfer', chat.id, frame)) ui.transferDialog.close();
}

function submitClose(event) {
  event.preventDefault();
  const chat = focusedChat();
  if (chat && !chat.ended) action('close', chat.id, { type: 'close', conversation_id: chat.id });
  ui.closeDialog.close();
}

export function wireDialogs() {
  ui.transferBtn.addEventListener('click', openTransfer);
  ui.transferForm.addEventListener('submit', submitTransfer);
  ui.transferCancel.addEventListener('click', () => ui.transferDialog.close());
  ui.closeBtn.addEventListener('click', () => {
    const chat = focusedChat();
    if (chat && !chat.ended) ui.closeDialog.showModal();
  });
  ui.closeForm.addEventListener('submit', submitClose);
  ui.closeCancel.addEventListener('click', () => ui.closeDialog.close());
  // A closed dialog gives the focus back to the message box (or to the chat's heading once ended).
  for (const dialog of [ui.transferDialog, ui.closeDialog]) {
    dialog.addEventListener('close', () => queueMicrotask(() => {
      const chat = focusedChat();
      if (chat && !chat.ended && !ui.composer.disabled) ui.composer.focus();
    }));
  }
}
