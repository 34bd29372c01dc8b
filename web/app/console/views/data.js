// The data browser: every class with its row count; a class's rows in a table with paging,
// sorting, a filter builder over the `where` operators, pointer links to follow, inline
// edits the API validates, rows and columns added and deleted, and the ACL and CLP editors.
// Every request goes through the public API with the console's credentials, so an admin
// without the master key sees and changes only what its rights allow (the server says no,
// and the refusal is shown as it is).

import { classPath } from '../../api.js';
import { confirmDialog, h, icon, iconButton, toast } from '../../dom.js';
import { ApiError, describeError } from '../../errors.js';
import { aclToRows, clpToModel, modelToClp, OPERATIONS, rowsToAcl } from '../clp.js';
import { fieldNames } from '../schema-doc.js';
import { api, identity } from '../session.js';
import { buildWhere, editable, editText, formatValue, InputError, operatorsFor, parseValue } from '../values.js';

const PAGE = 50;
const TYPES = ['String', 'Number', 'Boolean', 'Date', 'Object', 'Array', 'Pointer', 'Relation', 'File', 'GeoPoint', 'Polygon', 'Bytes'];
const DEFAULT_FIELDS = ['objectId', 'createdAt', 'updatedAt', 'ACL'];

/** A sentence for a refusal: the server's own words, with the code. */
function refusal(error) {
  if (error instanceof ApiError) {
    if (error.status === 403) return 'Refused: this needs the master key.';
    return `${error.message} (code ${error.code})`;
  }
  return describeError(error);
}

/** The columns of a class: objectId, its own fields, then the dates and the ACL. */
function columnsOf(schema) {
  const own = fieldNames(schema.fields).filter((name) => !DEFAULT_FIELDS.includes(name));
  return ['objectId', ...own, 'createdAt', 'updatedAt', 'ACL'].filter((name) => schema.fields[name]);
}

export function dataView(parts, query) {
  const [wantedClass] = parts;
  const state = {
    schemas: [],
    counts: new Map(),
    className: wantedClass ?? null,
    order: '-createdAt',
    skip: 0,
    filters: [],
    extraWhere: null,
    rows: [],
    total: null,
    selected: new Set(),
  };
  if (query.get('id')) state.filters = [{ field: 'objectId', op: '$eq', value: query.get('id') }];
  const related = query.get('relatedTo');
  if (related) {
    const [className, objectId, key] = related.split(':');
    state.extraWhere = { $relatedTo: { object: { __type: 'Pointer', className, objectId }, key } };
  }

  const classList = h('ul', { class: 'class-list', 'aria-label': 'Classes' });
  const body = h('div', { class: 'data-body' });
  const element = h(
    'section',
    { class: 'console-page data-page' },
    h('header', { class: 'console-header' }, h('h1', {}, 'Data'), h('p', { class: 'muted' }, identity() === 'master' ? 'As the master key: every object, every rule skipped.' : 'As your own user: what your ACLs and CLPs allow.')),
    h('div', { class: 'data-layout' }, h('nav', { class: 'class-nav', 'aria-label': 'Classes and their rows' }, h('h2', { class: 'visually-hidden' }, 'Classes'), classList), body),
  );

  const schemaOf = (name) => state.schemas.find((schema) => schema.className === name);

  async function loadClasses() {
    try {
      const answer = await api.request('GET', '/schemas');
      state.schemas = answer.results ?? [];
    } catch (error) {
      body.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, `The schema could not be read: ${refusal(error)}`));
      return;
    }
    if (!state.className || !schemaOf(state.className)) state.className = state.schemas.find((schema) => !schema.className.startsWith('_'))?.className ?? state.schemas[0]?.className;
    drawClassList();
    await Promise.all(state.schemas.map(async (schema) => {
      try {
        const answer = await api.request('GET', classPath(schema.className), undefined, { count: 1, limit: 0 });
        state.counts.set(schema.className, answer.count ?? 0);
      } catch (error) {
        state.counts.set(schema.className, error);
      }
      drawClassList();
    }));
  }

  function drawClassList() {
    classList.replaceChildren(
      ...state.schemas.map((schema) => {
        const count = state.counts.get(schema.className);
        const countText = count === undefined ? '…' : count instanceof Error ? '–' : count.toLocaleString();
        const title = count instanceof Error ? refusal(count) : undefined;
        return h('li', {}, h('a', {
          href: `#/data/${encodeURIComponent(schema.className)}`,
          class: schema.className === state.className ? 'active' : '',
          'aria-current': schema.className === state.className ? 'true' : null,
        }, h('span', { class: 'class-name' }, schema.className), h('span', { class: 'class-count', title, 'aria-label': count instanceof Error ? `${schema.className}: not counted` : `${countText} rows` }, countText)));
      }),
    );
  }

  // ---- the class's rows ----
  const filterRows = h('div', { class: 'filter-rows' });
  const filterError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const tableHolder = h('div', { class: 'table-holder' });
  const pager = h('div', { class: 'pager' });
  const status = h('p', { class: 'hint', role: 'status' });

  function drawClass() {
    const schema = schemaOf(state.className);
    if (!schema) {
      body.replaceChildren(h('p', { class: 'muted' }, 'No class to show.'));
      return;
    }
    const master = identity() === 'master';
    body.replaceChildren(
      h('div', { class: 'class-header' },
        h('h2', {}, schema.className),
        h('div', { class: 'row' },
          h('button', { type: 'button', class: 'button', onclick: () => addRowDialog(schema) }, icon('plus'), 'Add row'),
          h('button', { type: 'button', class: 'button', onclick: () => addColumnDialog(schema), title: master ? null : 'Needs the master key' }, icon('plus'), 'Add column'),
          h('button', { type: 'button', class: 'button', onclick: () => clpDialog(schema) }, 'Permissions (CLP)'),
          h('button', { type: 'button', class: 'button danger', id: 'delete-rows', disabled: true, onclick: deleteSelected }, icon('trash'), 'Delete selected'),
          iconButton('regenerate', 'Reload rows', () => loadRows()),
        )),
      h('form', { class: 'filters', 'aria-label': 'Filter', onsubmit: (event) => { event.preventDefault(); applyFilters(); } },
        filterRows,
        filterError,
        h('div', { class: 'row' },
          h('button', { type: 'button', class: 'button', onclick: () => { state.filters.push({ field: 'objectId', op: '$eq', value: '' }); drawFilters(); } }, icon('plus'), 'Add filter'),
          h('button', { type: 'submit', class: 'button primary' }, 'Apply filters'),
          h('button', { type: 'button', class: 'link-button', onclick: () => { state.filters = []; state.extraWhere = null; drawFilters(); applyFilters(); } }, 'Clear'),
        )),
      status,
      tableHolder,
      pager,
    );
    drawFilters();
  }

  function drawFilters() {
    const schema = schemaOf(state.className);
    const names = fieldNames(schema.fields).filter((name) => name !== 'ACL');
    filterRows.replaceChildren(
      ...state.filters.map((filter, index) => {
        const field = schema.fields[filter.field] ?? {};
        const operators = operatorsFor(field);
        if (!operators.some((item) => item.op === filter.op)) filter.op = operators[0].op;
        const takes = operators.find((item) => item.op === filter.op).takes;
        const fieldSelect = h('select', { 'aria-label': `Filter ${index + 1}: field`, onchange: (event) => { filter.field = event.target.value; filter.value = ''; drawFilters(); } },
          names.map((name) => h('option', { value: name, selected: name === filter.field }, name)));
        const opSelect = h('select', { 'aria-label': `Filter ${index + 1}: operator`, onchange: (event) => { filter.op = event.target.value; drawFilters(); } },
          operators.map((item) => h('option', { value: item.op, selected: item.op === filter.op }, item.label)));
        const valueInput = takes === 'bool'
          ? h('select', { 'aria-label': `Filter ${index + 1}: value`, onchange: (event) => { filter.value = event.target.value; } },
            h('option', { value: 'true', selected: filter.value !== 'false' }, 'yes'), h('option', { value: 'false', selected: filter.value === 'false' }, 'no'))
          : h('input', {
            'aria-label': `Filter ${index + 1}: value`,
            value: filter.value ?? '',
            placeholder: takes === 'list' || takes === 'elements' ? 'a, b, c' : field.type === 'Date' ? '2026-11-24T10:00:00Z' : field.type === 'Pointer' ? 'objectId' : '',
            oninput: (event) => { filter.value = event.target.value; },
          });
        return h('div', { class: 'filter-row' }, fieldSelect, opSelect, valueInput,
          iconButton('close', `Remove filter ${index + 1}`, () => { state.filters.splice(index, 1); drawFilters(); }));
      }),
    );
    if (state.extraWhere) filterRows.append(h('p', { class: 'notice' }, `Objects related through ${state.extraWhere.$relatedTo.object.className}.${state.extraWhere.$relatedTo.key} of ${state.extraWhere.$relatedTo.object.objectId}`));
  }

  function currentWhere() {
    const schema = schemaOf(state.className);
    const where = buildWhere(state.filters, schema.fields);
    return state.extraWhere ? { ...where, ...state.extraWhere } : where;
  }

  function applyFilters() {
    filterError.hidden = true;
    try {
      currentWhere();
    } catch (error) {
      filterError.textContent = error instanceof InputError ? error.message : String(error);
      filterError.hidden = false;
      return;
    }
    state.skip = 0;
    loadRows();
  }

  async function loadRows() {
    const schema = schemaOf(state.className);
    if (!schema) return;
    let where;
    try {
      where = currentWhere();
    } catch (error) {
      filterError.textContent = error.message;
      filterError.hidden = false;
      return;
    }
    status.textContent = 'Loading…';
    try {
      const answer = await api.request('GET', classPath(schema.className), undefined, {
        where: Object.keys(where).length ? where : undefined,
        order: state.order,
        skip: state.skip || undefined,
        limit: PAGE,
        count: 1,
      });
      state.rows = answer.results ?? [];
      state.total = answer.count ?? state.rows.length;
      state.selected.clear();
      status.textContent = '';
      drawTable();
    } catch (error) {
      state.rows = [];
      state.total = null;
      tableHolder.replaceChildren();
      pager.replaceChildren();
      status.textContent = '';
      tableHolder.append(h('p', { class: 'form-error', role: 'alert' }, refusal(error)));
    }
  }

  function sortButton(name) {
    const ascending = state.order === name;
    const descending = state.order === `-${name}`;
    const label = `${name}${ascending ? ' ▲' : descending ? ' ▼' : ''}`;
    return h('button', {
      type: 'button',
      class: 'sort-button',
      'aria-label': `Sort by ${name}${ascending ? ', ascending now' : descending ? ', descending now' : ''}`,
      onclick: () => {
        state.order = ascending ? `-${name}` : name;
        state.skip = 0;
        loadRows();
      },
    }, label);
  }

  function drawTable() {
    const schema = schemaOf(state.className);
    const columns = columnsOf(schema);
    const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select every row on this page', onchange: (event) => {
      state.selected = new Set(event.target.checked ? state.rows.map((row) => row.objectId) : []);
      drawTable();
    } });
    selectAll.checked = state.rows.length > 0 && state.selected.size === state.rows.length;
    const head = h('tr', {}, h('th', { scope: 'col', class: 'select-cell' }, selectAll), columns.map((name) => {
      const field = schema.fields[name];
      return h('th', { scope: 'col', 'data-field': name },
        h('div', { class: 'th-inner' },
          field.type === 'ACL' ? h('span', {}, name) : sortButton(name),
          h('span', { class: 'th-type' }, field.targetClass ? `${field.type}<${field.targetClass}>` : field.type),
          DEFAULT_FIELDS.includes(name) || schema.className.startsWith('_') && ['username', 'password', 'email', 'emailVerified', 'authData', 'name', 'users', 'roles', 'user', 'sessionToken', 'expiresAt', 'createdWith', 'installationId'].includes(name)
            ? null
            : iconButton('trash', `Delete column ${name}`, () => deleteColumn(schema, name), { class: 'column-delete' })));
    }));
    const rows = state.rows.map((row) => {
      const checkbox = h('input', { type: 'checkbox', 'aria-label': `Select row ${row.objectId}`, onchange: (event) => {
        if (event.target.checked) state.selected.add(row.objectId);
        else state.selected.delete(row.objectId);
        updateDeleteButton();
      } });
      checkbox.checked = state.selected.has(row.objectId);
      return h('tr', { 'data-id': row.objectId }, h('td', { class: 'select-cell' }, checkbox), columns.map((name) => cell(schema, row, name)));
    });
    const table = h('table', { class: 'data-table' },
      h('caption', { class: 'visually-hidden' }, `${schema.className} rows`),
      h('thead', {}, head), h('tbody', {}, rows));
    tableHolder.replaceChildren(rows.length ? table : h('div', { class: 'empty-rows' }, table, h('p', { class: 'muted' }, 'No rows match.')));
    const first = state.total ? state.skip + 1 : 0;
    const last = state.skip + state.rows.length;
    pager.replaceChildren(
      h('span', { class: 'muted' }, `Rows ${first.toLocaleString()}–${last.toLocaleString()} of ${(state.total ?? 0).toLocaleString()}`),
      h('button', { type: 'button', class: 'button', disabled: state.skip === 0, onclick: () => { state.skip = Math.max(0, state.skip - PAGE); loadRows(); } }, icon('left'), 'Previous'),
      h('button', { type: 'button', class: 'button', disabled: last >= (state.total ?? 0), onclick: () => { state.skip += PAGE; loadRows(); } }, 'Next', icon('right')),
    );
    updateDeleteButton();
  }

  function updateDeleteButton() {
    const button = body.querySelector('#delete-rows');
    if (!button) return;
    button.disabled = state.selected.size === 0;
    button.lastChild.textContent = state.selected.size ? `Delete ${state.selected.size} selected` : 'Delete selected';
  }

  /** One cell: the value (pointers and relations as links to follow), editable in place. */
  function cell(schema, row, name) {
    const field = schema.fields[name] ?? {};
    const td = h('td', { 'data-field': name });
    const show = () => {
      // Read at each drawing: a save puts the stored value in `row`.
      const value = row[name];
      const text = formatValue(value, field);
      const parts = [];
      if (field.type === 'ACL') {
        parts.push(h('button', { type: 'button', class: 'cell-value', 'aria-label': `Edit the ACL of ${row.objectId}`, onclick: () => aclDialog(schema, row) }, text || 'public'));
      } else if (editable(name, field)) {
        parts.push(h('button', { type: 'button', class: `cell-value ${value === undefined ? 'unset' : ''}`, 'aria-label': `Edit ${name} of ${row.objectId}`, title: text, ondblclick: edit, onclick: edit }, text || '\u00a0'));
      } else {
        parts.push(h('span', { class: 'cell-text', title: text }, text));
      }
      if (field.type === 'Pointer' && value?.objectId) {
        parts.push(h('a', { class: 'follow', href: `#/data/${encodeURIComponent(value.className ?? field.targetClass)}?id=${encodeURIComponent(value.objectId)}`, 'aria-label': `Open ${value.className ?? field.targetClass} ${value.objectId}` }, '→'));
      }
      if (field.type === 'Relation') {
        parts.push(h('a', { class: 'follow', href: `#/data/${encodeURIComponent(field.targetClass)}?relatedTo=${encodeURIComponent(`${schema.className}:${row.objectId}:${name}`)}`, 'aria-label': `Browse the ${name} of ${row.objectId}` }, 'browse →'));
      }
      if (field.type === 'Array' && Array.isArray(value) && value.some((item) => item?.__type === 'Pointer')) {
        const target = value.find((item) => item?.__type === 'Pointer').className;
        const ids = value.filter((item) => item?.__type === 'Pointer').map((item) => item.objectId);
        parts.push(h('a', { class: 'follow', href: `#/data/${encodeURIComponent(target)}?id=${encodeURIComponent(ids[0])}`, 'aria-label': `Open ${target} ${ids[0]}` }, '→'));
      }
      td.replaceChildren(h('div', { class: 'cell-line' }, ...parts));
    };
    const edit = () => {
      const value = row[name];
      const multiline = ['Object', 'Array', 'Polygon'].includes(field.type);
      const input = multiline
        ? h('textarea', { rows: 4, 'aria-label': `New value of ${name}` })
        : h('input', { 'aria-label': `New value of ${name}`, type: name === 'password' ? 'password' : 'text' });
      input.value = name === 'password' ? '' : editText(value, field);
      const error = h('p', { class: 'cell-error', role: 'alert', hidden: true });
      const save = async () => {
        error.hidden = true;
        let parsed;
        try {
          parsed = parseValue(input.value, field);
        } catch (failure) {
          error.textContent = failure.message;
          error.hidden = false;
          input.setAttribute('aria-invalid', 'true');
          return;
        }
        const body = { [name]: parsed === undefined ? { __op: 'Delete' } : parsed };
        try {
          await api.update(schema.className, row.objectId, body);
          const fresh = await api.get(schema.className, row.objectId);
          Object.assign(row, fresh);
          if (parsed === undefined) delete row[name];
          toast(`Saved ${name}.`);
          show();
        } catch (failure) {
          error.textContent = refusal(failure);
          error.hidden = false;
          input.setAttribute('aria-invalid', 'true');
          input.focus();
        }
      };
      input.addEventListener('keydown', (event) => {
        if (event.key === 'Escape') {
          event.preventDefault();
          show();
        } else if (event.key === 'Enter' && (!multiline || event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          save();
        }
      });
      td.replaceChildren(h('div', { class: 'cell-editor' }, input,
        h('div', { class: 'row' },
          h('button', { type: 'button', class: 'button primary small', onclick: save }, 'Save'),
          h('button', { type: 'button', class: 'link-button', onclick: show }, 'Cancel'),
          h('span', { class: 'hint' }, multiline ? 'Ctrl+Enter saves' : 'Enter saves, Esc cancels')),
        error));
      input.focus();
    };
    show();
    return td;
  }

  async function deleteSelected() {
    const ids = [...state.selected];
    if (!ids.length) return;
    const schema = schemaOf(state.className);
    if (!(await confirmDialog(`Delete ${ids.length} row${ids.length === 1 ? '' : 's'}?`, `From ${schema.className}. This cannot be undone.`, 'Delete', true))) return;
    const path = `${api.base}${classPath(schema.className)}`;
    const failures = [];
    for (let start = 0; start < ids.length; start += 50) {
      const chunk = ids.slice(start, start + 50);
      try {
        const answer = await api.request('POST', '/batch', { requests: chunk.map((id) => ({ method: 'DELETE', path: `${path}/${encodeURIComponent(id)}` })) });
        answer.forEach((item, index) => {
          if (item.error) failures.push(`${chunk[index]}: ${item.error.error} (code ${item.error.code})`);
        });
      } catch (error) {
        failures.push(refusal(error));
      }
    }
    if (failures.length) toast(`Not deleted: ${failures.join('; ')}`, 'error');
    else toast(`Deleted ${ids.length} row${ids.length === 1 ? '' : 's'}.`);
    refreshCount(schema.className);
    loadRows();
  }

  async function refreshCount(className) {
    try {
      const answer = await api.request('GET', classPath(className), undefined, { count: 1, limit: 0 });
      state.counts.set(className, answer.count ?? 0);
    } catch (error) {
      state.counts.set(className, error);
    }
    drawClassList();
  }

  /** A modal dialog with a form; `onSubmit(form, showError)` resolves true to close it. */
  function formDialog(title, fields, submitLabel, onSubmit) {
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const showError = (message) => {
      error.textContent = message;
      error.hidden = false;
    };
    const dialog = h('dialog', { class: 'dialog wide-dialog', 'aria-label': title });
    const form = h('form', {
      class: 'stack',
      onsubmit: async (event) => {
        event.preventDefault();
        error.hidden = true;
        const submit = form.querySelector('button[type="submit"]');
        submit.disabled = true;
        try {
          if (await onSubmit(form, showError)) {
            dialog.close();
            dialog.remove();
          }
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h2', {}, title),
    fields,
    error,
    h('div', { class: 'dialog-actions' },
      h('button', { type: 'button', class: 'button', onclick: () => { dialog.close(); dialog.remove(); } }, 'Cancel'),
      h('button', { type: 'submit', class: 'button primary' }, submitLabel)));
    dialog.append(form);
    dialog.addEventListener('cancel', () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    return dialog;
  }

  function addRowDialog(schema) {
    const names = fieldNames(schema.fields).filter((name) => !['objectId', 'createdAt', 'updatedAt'].includes(name) && editable(name, schema.fields[name]));
    const inputs = names.map((name, index) => {
      const field = schema.fields[name];
      const id = `new-row-${index}`;
      const multiline = ['Object', 'Array', 'ACL', 'Polygon'].includes(field.type);
      const input = multiline ? h('textarea', { id, rows: 2, 'data-field': name }) : h('input', { id, 'data-field': name, type: name === 'password' ? 'password' : 'text' });
      return h('div', { class: 'field' }, h('label', { for: id }, `${name} `, h('span', { class: 'hint' }, `${field.targetClass ? `${field.type}<${field.targetClass}>` : field.type}${field.required ? ', required' : ''}`)), input);
    });
    formDialog(`Add a row to ${schema.className}`, h('div', { class: 'form-grid' }, inputs), 'Create', async (form, showError) => {
      const body = {};
      for (const input of form.querySelectorAll('[data-field]')) {
        const name = input.dataset.field;
        if (input.value === '') continue;
        try {
          const value = parseValue(input.value, schema.fields[name]);
          if (value !== undefined) body[name] = value;
        } catch (failure) {
          showError(`${name}: ${failure.message}`);
          return false;
        }
      }
      try {
        const created = await api.create(schema.className, body);
        toast(`Created ${created.objectId}.`);
        refreshCount(schema.className);
        loadRows();
        return true;
      } catch (failure) {
        showError(refusal(failure));
        return false;
      }
    });
  }

  function addColumnDialog(schema) {
    const name = h('input', { id: 'new-column-name', required: true, autocomplete: 'off' });
    const type = h('select', { id: 'new-column-type' }, TYPES.map((item) => h('option', { value: item }, item)));
    const target = h('select', { id: 'new-column-target' }, state.schemas.map((item) => h('option', { value: item.className }, item.className)));
    const targetField = h('div', { class: 'field', hidden: true }, h('label', { for: 'new-column-target' }, 'Target class'), target);
    type.addEventListener('change', () => { targetField.hidden = !['Pointer', 'Relation'].includes(type.value); });
    const required = h('input', { type: 'checkbox', id: 'new-column-required' });
    const defaultValue = h('input', { id: 'new-column-default', autocomplete: 'off' });
    formDialog(`Add a column to ${schema.className}`, [
      h('div', { class: 'field' }, h('label', { for: 'new-column-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'new-column-type' }, 'Type'), type),
      targetField,
      h('label', { class: 'check' }, required, 'Required'),
      h('div', { class: 'field' }, h('label', { for: 'new-column-default' }, 'Default value (optional)'), defaultValue),
    ], 'Add column', async (_form, showError) => {
      const definition = { type: type.value };
      if (['Pointer', 'Relation'].includes(type.value)) definition.targetClass = target.value;
      if (required.checked) definition.required = true;
      if (defaultValue.value !== '') {
        try {
          definition.defaultValue = parseValue(defaultValue.value, definition);
        } catch (failure) {
          showError(`Default value: ${failure.message}`);
          return false;
        }
      }
      try {
        const updated = await api.request('PUT', `/schemas/${encodeURIComponent(schema.className)}`, { className: schema.className, fields: { [name.value.trim()]: definition } });
        replaceSchema(updated);
        toast(`Added ${name.value.trim()}.`);
        drawClass();
        loadRows();
        return true;
      } catch (failure) {
        showError(refusal(failure));
        return false;
      }
    });
  }

  function replaceSchema(updated) {
    const index = state.schemas.findIndex((item) => item.className === updated.className);
    if (index >= 0) state.schemas[index] = updated;
  }

  async function deleteColumn(schema, name) {
    if (!(await confirmDialog(`Delete the column ${name}?`, `Its values in every ${schema.className} row are deleted too. This cannot be undone.`, 'Delete column', true))) return;
    try {
      const updated = await api.request('PUT', `/schemas/${encodeURIComponent(schema.className)}`, { className: schema.className, fields: { [name]: { __op: 'Delete' } } });
      replaceSchema(updated);
      toast(`Deleted ${name}.`);
      drawClass();
      loadRows();
    } catch (failure) {
      toast(refusal(failure), 'error');
    }
  }

  function aclDialog(schema, row) {
    const rows = aclToRows(row.ACL);
    const list = h('div', { class: 'acl-rows' });
    const draw = () => {
      list.replaceChildren(
        h('div', { class: 'acl-row acl-head', 'aria-hidden': 'true' }, h('span', {}, 'Who'), h('span', {}, 'Read'), h('span', {}, 'Write'), h('span', {})),
        ...rows.map((entry, index) => {
          const who = h('input', { value: entry.who, 'aria-label': `Entry ${index + 1}: who (* for the public, a user id, role:Name)`, oninput: (event) => { entry.who = event.target.value; } });
          const read = h('input', { type: 'checkbox', 'aria-label': `Entry ${index + 1}: read`, onchange: (event) => { entry.read = event.target.checked; } });
          const write = h('input', { type: 'checkbox', 'aria-label': `Entry ${index + 1}: write`, onchange: (event) => { entry.write = event.target.checked; } });
          read.checked = entry.read;
          write.checked = entry.write;
          return h('div', { class: 'acl-row' }, who, read, write, iconButton('close', `Remove entry ${index + 1}`, () => { rows.splice(index, 1); draw(); }));
        }),
      );
    };
    draw();
    formDialog(`ACL of ${schema.className} ${row.objectId}`, [
      h('p', { class: 'hint' }, '* is the public; a user\u2019s objectId; role:Name for a role. No entry at all: only the master key.'),
      list,
      h('button', { type: 'button', class: 'button', onclick: () => { rows.push({ who: '', read: true, write: false }); draw(); } }, icon('plus'), 'Add entry'),
    ], 'Save ACL', async (_form, showError) => {
      try {
        await api.update(schema.className, row.objectId, { ACL: rowsToAcl(rows) });
        toast('Saved the ACL.');
        loadRows();
        return true;
      } catch (failure) {
        showError(refusal(failure));
        return false;
      }
    });
  }

  function clpDialog(schema) {
    const model = clpToModel(schema.classLevelPermissions);
    const check = (operation, key, label) => {
      const box = h('input', { type: 'checkbox', 'aria-label': `${operation}: ${label}`, onchange: (event) => { model.operations[operation][key] = event.target.checked; } });
      box.checked = model.operations[operation][key];
      return box;
    };
    const text = (operation, key, label) => h('input', { value: model.operations[operation][key], 'aria-label': `${operation}: ${label}`, oninput: (event) => { model.operations[operation][key] = event.target.value; } });
    const table = h('table', { class: 'clp-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Operation'), h('th', { scope: 'col' }, 'Public'), h('th', { scope: 'col' }, 'Logged in'), h('th', { scope: 'col' }, 'Users and roles'), h('th', { scope: 'col' }, 'Pointer fields'))),
      h('tbody', {}, OPERATIONS.map((operation) => h('tr', {},
        h('th', { scope: 'row' }, operation),
        h('td', {}, check(operation, 'public', 'public')),
        h('td', {}, check(operation, 'authenticated', 'logged-in users')),
        h('td', {}, text(operation, 'who', 'user ids and role:Name, comma-separated')),
        h('td', {}, text(operation, 'pointerFields', 'pointer fields, comma-separated'))))));
    const readUserFields = h('input', { id: 'clp-read-user-fields', value: model.readUserFields });
    const writeUserFields = h('input', { id: 'clp-write-user-fields', value: model.writeUserFields });
    const protectedFields = h('textarea', { id: 'clp-protected-fields', rows: 4 });
    protectedFields.value = model.protectedFields;
    formDialog(`Class-level permissions of ${schema.className}`, [
      h('p', { class: 'hint' }, 'An operation with nothing ticked is the master key\u2019s alone. Saving needs the master key.'),
      h('div', { class: 'table-holder' }, table),
      h('div', { class: 'field' }, h('label', { for: 'clp-read-user-fields' }, 'readUserFields'), readUserFields),
      h('div', { class: 'field' }, h('label', { for: 'clp-write-user-fields' }, 'writeUserFields'), writeUserFields),
      h('div', { class: 'field' }, h('label', { for: 'clp-protected-fields' }, 'protectedFields (JSON)'), protectedFields),
    ], 'Save permissions', async (_form, showError) => {
      model.readUserFields = readUserFields.value;
      model.writeUserFields = writeUserFields.value;
      model.protectedFields = protectedFields.value;
      let clp;
      try {
        clp = modelToClp(model);
      } catch (failure) {
        showError(failure.message);
        return false;
      }
      try {
        const updated = await api.request('PUT', `/schemas/${encodeURIComponent(schema.className)}`, { className: schema.className, classLevelPermissions: clp });
        replaceSchema(updated);
        toast('Saved the permissions.');
        return true;
      } catch (failure) {
        showError(refusal(failure));
        return false;
      }
    });
  }

  (async () => {
    await loadClasses();
    if (schemaOf(state.className)) {
      drawClass();
      loadRows();
    }
  })();

  return { element, title: state.className ? `Data: ${state.className}` : 'Data' };
}
