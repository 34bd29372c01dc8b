// The Context panel of a session: its `data` as editable JSON (checked here, saved with the
// API's rules), its running summary (and summarising on demand), and a preview of what a
// persona will see next (the `previewContext` cloud function: the prompt's parts with
// their token counts).

import { h, icon, iconButton, toast } from '../dom.js';
import { describeError } from '../errors.js';
import { api } from '../store.js';
import { parseContextData } from '../context-data.js';

export class ContextPanel {
  constructor(sessionId, onClose) {
    this.sessionId = sessionId;
    this.contextObject = null;
    this.editor = h('textarea', { class: 'json-editor', spellcheck: 'false', rows: '10', 'aria-describedby': 'context-data-status' });
    this.editor.id = 'context-data';
    this.dataStatus = h('p', { class: 'hint', id: 'context-data-status', role: 'status' });
    this.saveButton = h('button', { type: 'submit', class: 'button primary' }, 'Save data');
    this.summary = h('div', { class: 'summary-text' });
    this.personaSelect = h('select', { 'aria-label': 'Persona to preview' });
    this.preview = h('div', { class: 'preview' });
    const dataForm = h('form', { class: 'panel-section' },
      h('h3', {}, h('label', { for: 'context-data', text: 'Data (JSON)' })),
      h('p', { class: 'hint', text: 'State the personas see with every reply. Members of the session can edit it.' }),
      this.editor, this.dataStatus,
      h('div', { class: 'row' }, this.saveButton,
        h('button', { type: 'button', class: 'button', onclick: () => this.format() }, 'Format')));
    dataForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.save();
    });
    this.editor.addEventListener('input', () => this.validate());
    this.summarizeButton = h('button', { type: 'button', class: 'button', onclick: () => this.summarize() }, 'Summarize now');
    this.element = h(
      'aside',
      { class: 'context-panel', id: 'context-panel', 'aria-labelledby': 'context-title', hidden: true },
      h('header', { class: 'panel-header' }, h('h2', { id: 'context-title', text: 'Context' }),
        iconButton('close', 'Close the context panel', onClose)),
      dataForm,
      h('section', { class: 'panel-section', 'aria-labelledby': 'summary-title' },
        h('h3', { id: 'summary-title', text: 'Summary' }),
        this.summary, this.summarizeButton),
      h('section', { class: 'panel-section', 'aria-labelledby': 'preview-title' },
        h('h3', { id: 'preview-title', text: 'Next prompt' }),
        h('p', { class: 'hint', text: 'What the persona will see when it answers next, within its model\u2019s window.' }),
        h('div', { class: 'row' }, this.personaSelect,
          h('button', { type: 'button', class: 'button', onclick: () => this.loadPreview() }, icon('regenerate'), 'Refresh')),
        this.preview),
    );
    this.element.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') onClose();
    });
  }

  async open(session, personas) {
    this.session = session;
    this.element.hidden = false;
    this.personaSelect.replaceChildren(...personas.map((persona) => h('option', { value: persona.objectId, text: persona.name })));
    this.personaSelect.disabled = !personas.length;
    this.element.querySelector('.panel-header button')?.focus();
    await this.load();
    if (!this.editor.disabled) this.editor.focus();
    this.loadPreview();
  }

  close() {
    this.element.hidden = true;
  }

  async load() {
    // Not editable until the stored data is in: typing would be overwritten.
    this.editor.disabled = true;
    const contextId = this.session?.context?.objectId;
    try {
      if (contextId) {
        this.contextObject = await api.get('Context', contextId);
      } else {
        const answer = await api.find('Context', { where: { sessionId: this.sessionId }, limit: 1 });
        this.contextObject = answer.results?.[0] ?? null;
      }
    } catch (error) {
      this.dataStatus.textContent = describeError(error);
      return;
    }
    this.showContext();
  }

  showContext() {
    const context = this.contextObject;
    if (!context) {
      this.editor.value = '{}';
      this.dataStatus.textContent = 'This session has no Context yet.';
      this.saveButton.disabled = true;
      return;
    }
    this.editor.value = JSON.stringify(context.data ?? {}, null, 2);
    this.editor.disabled = false;
    this.validate();
    this.summary.replaceChildren(context.summary
      ? h('p', { text: context.summary })
      : h('p', { class: 'muted', text: 'No summary yet: it is written when the conversation outgrows the model\u2019s window.' }));
  }

  validate() {
    const parsed = parseContextData(this.editor.value);
    this.editor.setAttribute('aria-invalid', String(Boolean(parsed.error)));
    this.dataStatus.textContent = parsed.error ?? '';
    this.dataStatus.classList.toggle('error', Boolean(parsed.error));
    this.saveButton.disabled = Boolean(parsed.error) || !this.contextObject;
    return parsed;
  }

  format() {
    const parsed = this.validate();
    if (parsed.value) this.editor.value = JSON.stringify(parsed.value, null, 2);
  }

  async save() {
    const parsed = this.validate();
    if (parsed.error || !this.contextObject) return;
    this.saveButton.disabled = true;
    try {
      await api.update('Context', this.contextObject.objectId, { data: parsed.value });
      this.contextObject.data = parsed.value;
      this.dataStatus.textContent = 'Saved.';
      this.loadPreview();
    } catch (error) {
      this.dataStatus.textContent = describeError(error, 'Saving failed');
      this.dataStatus.classList.add('error');
    } finally {
      this.saveButton.disabled = false;
    }
  }

  async summarize() {
    this.summarizeButton.disabled = true;
    try {
      const answer = await api.call('summarizeSession', { sessionId: this.sessionId });
      if (!answer?.summary) toast('Too little new conversation to summarise yet.');
      await this.load();
    } catch (error) {
      toast(describeError(error), 'error');
    } finally {
      this.summarizeButton.disabled = false;
    }
  }

  async loadPreview() {
    if (this.element.hidden) return;
    const personaId = this.personaSelect.value;
    if (!personaId) {
      this.preview.replaceChildren(h('p', { class: 'muted', text: 'This session has no personas.' }));
      return;
    }
    this.preview.replaceChildren(h('p', { class: 'muted', text: 'Assembling…' }));
    try {
      const result = await api.call('previewContext', { sessionId: this.sessionId, personaId });
      this.preview.replaceChildren(renderPreview(result));
    } catch (error) {
      this.preview.replaceChildren(h('p', { class: 'form-error', text: describeError(error) }));
    }
  }

  destroy() {}
}

function renderPreview(result) {
  const total = result.totalTokens ?? 0;
  const window = result.contextWindow ?? 0;
  const percent = window ? Math.min(100, Math.round((total / window) * 100)) : 0;
  const meter = h('div', { class: 'meter', role: 'img', 'aria-label': `${total} of ${window} tokens used` }, h('span'));
  meter.firstChild.style.width = `${percent}%`;
  return h('div', {},
    h('p', { class: 'preview-summary' },
      h('strong', { text: `${total.toLocaleString()} tokens` }),
      ` of ${window.toLocaleString()} (model ${result.model || 'default'}, ${(result.maxOutputTokens ?? 0).toLocaleString()} kept for the answer)`),
    meter,
    h('ol', { class: 'preview-parts' },
      ...(result.system?.parts ?? []).map((part) => h('li', { class: 'preview-part' },
        h('div', { class: 'part-head' }, h('span', { class: 'part-kind', text: partLabel(part.kind) }), h('span', { class: 'tokens', text: `${part.tokens} tokens` })),
        h('pre', { class: 'part-text', text: part.text }))),
      h('li', { class: 'preview-part' },
        h('div', { class: 'part-head' },
          h('span', { class: 'part-kind', text: `History: ${result.messages?.length ?? 0} messages${result.leftOut ? ` (${result.leftOut} older left out)` : ''}` }),
          h('span', { class: 'tokens', text: `${result.historyTokens ?? 0} tokens` })),
        h('ol', { class: 'preview-messages' }, ...(result.messages ?? []).map((message) => h('li', {},
          h('span', { class: 'part-kind', text: `${message.role}${message.name ? ` (${message.name})` : ''}` }),
          h('span', { class: 'tokens', text: `${message.tokens}` }),
          h('p', { text: message.content }))))))
  );
}

function partLabel(kind) {
  return {
    persona: 'Persona prompt',
    identity: 'Who the persona is',
    context: 'Context data',
    summary: 'Summary',
    excerpts: 'Retrieved excerpts',
  }[kind] ?? kind;
}
