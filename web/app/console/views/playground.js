// The API playground. REST: pick a class (or group) and an operation from `/openapi.json`,
// fill its path and query parameters, edit the body (an example is written from the
// operation's schema), send it as the master key, a user of your choice or anonymous, and
// see the status, headers, time and a curl line to copy. GraphQL: a query sent with the
// same identity, and the GraphiQL playground one click away.

import { h, icon, toast } from '../../dom.js';
import { describeError } from '../../errors.js';
import { exampleBody, operationsOf } from '../openapi.js';
import { api, identity, rawRequest, settings } from '../session.js';

/** The identity picker shared by both panes: `who()` answers the current choice. */
function identityPicker() {
  const users = new Map();
  const select = h('select', { id: 'playground-identity' });
  const options = () => {
    const items = [];
    if (identity() === 'master') items.push(['master', 'Master key']);
    if (identity() === 'admin') items.push(['self', `Me (${api.user?.username ?? 'admin'})`]);
    for (const [username] of users) items.push([`user:${username}`, `User: ${username}`]);
    items.push(['other', 'Another user…'], ['anonymous', 'Anonymous (app id only)']);
    const previous = select.value;
    select.replaceChildren(...items.map(([value, label]) => h('option', { value }, label)));
    if (items.some(([value]) => value === previous)) select.value = previous;
  };
  const username = h('input', { id: 'playground-username', autocomplete: 'off', placeholder: 'username' });
  const password = h('input', { id: 'playground-password', type: 'password', autocomplete: 'off', placeholder: 'password' });
  const token = h('input', { id: 'playground-token', autocomplete: 'off', placeholder: 'r:…', spellcheck: 'false' });
  const status = h('p', { class: 'hint', role: 'status' });
  const other = h('div', { class: 'identity-other', hidden: true },
    h('div', { class: 'row' },
      h('label', { for: 'playground-username', class: 'visually-hidden' }, 'Username'), username,
      h('label', { for: 'playground-password', class: 'visually-hidden' }, 'Password'), password,
      h('button', {
        type: 'button',
        class: 'button',
        onclick: async () => {
          status.textContent = 'Logging in…';
          const result = await rawRequest({ method: 'POST', url: `${api.base}/login`, body: JSON.stringify({ username: username.value.trim(), password: password.value }), who: { kind: 'anonymous' } });
          if (result.status === 200 && result.json?.sessionToken) {
            users.set(result.json.username, result.json.sessionToken);
            options();
            select.value = `user:${result.json.username}`;
            other.hidden = true;
            status.textContent = `Logged in as ${result.json.username}; requests now carry its session token.`;
          } else {
            status.textContent = `Log-in refused: ${result.json?.error ?? result.error ?? result.status}`;
          }
        },
      }, 'Log in as this user')),
    h('div', { class: 'row' },
      h('label', { for: 'playground-token' }, 'or a session token'), token,
      h('button', { type: 'button', class: 'button', onclick: () => {
        if (!token.value.trim()) return;
        users.set(`token ${token.value.trim().slice(0, 10)}…`, token.value.trim());
        options();
        select.value = `user:token ${token.value.trim().slice(0, 10)}…`;
        other.hidden = true;
        status.textContent = 'Requests now carry that session token.';
      } }, 'Use token')));
  select.addEventListener('change', () => {
    other.hidden = select.value !== 'other';
    status.textContent = '';
  });
  options();
  const element = h('div', { class: 'identity-picker' },
    h('div', { class: 'field' }, h('label', { for: 'playground-identity' }, 'Send as'), select),
    other,
    status);
  return {
    element,
    who() {
      const value = select.value;
      if (value === 'master') return { kind: 'master', label: 'the master key' };
      if (value === 'self') return { kind: 'session', token: api.token, label: api.user?.username };
      if (value.startsWith('user:')) return { kind: 'session', token: users.get(value.slice(5)), label: value.slice(5) };
      return { kind: 'anonymous', label: 'anonymous' };
    },
  };
}

/** The answer panel: status, time, headers, body, curl. */
function resultPanel(result) {
  if (result.error) {
    return h('div', { class: 'result' }, h('p', { class: 'form-error', role: 'alert' }, result.error), curlBlock(result.curl));
  }
  const ok = result.status < 400;
  const body = result.json !== undefined ? JSON.stringify(result.json, null, 2) : result.text;
  return h('div', { class: 'result', 'aria-label': 'Answer' },
    h('div', { class: 'result-line' },
      h('span', { class: `status-badge ${ok ? 'ok' : 'bad'}`, 'data-status': result.status }, `${result.status} ${result.statusText}`),
      h('span', { class: 'muted', 'data-elapsed': '' }, `${result.elapsed.toFixed(0)} ms`)),
    h('details', { class: 'result-headers' }, h('summary', {}, `Headers (${result.headers.length})`),
      h('table', { class: 'headers-table' }, h('tbody', {}, result.headers.map(([name, value]) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, value)))))),
    h('pre', { class: 'code-block result-body', tabindex: '0', 'aria-label': 'Answer body' }, body || '(empty)'),
    curlBlock(result.curl));
}

function curlBlock(curl) {
  return h('div', { class: 'curl' },
    h('div', { class: 'row' }, h('h3', {}, 'curl'), h('button', { type: 'button', class: 'button small', onclick: async () => {
      try {
        await navigator.clipboard.writeText(curl);
        toast('The curl line is copied.');
      } catch {
        toast('The browser did not allow copying; select the line instead.', 'error');
      }
    } }, icon('copy'), 'Copy curl')),
    h('pre', { class: 'code-block curl-line', tabindex: '0', 'aria-label': 'curl command' }, curl));
}

export function playgroundView() {
  const picker = identityPicker();
  const restPane = h('section', { class: 'pane', 'aria-labelledby': 'rest-title' }, h('h2', { id: 'rest-title' }, 'REST'), h('p', { class: 'muted', role: 'status' }, 'Loading /openapi.json…'));
  const graphqlPane = graphqlSection(picker);
  const element = h('section', { class: 'console-page playground-page' },
    h('header', { class: 'console-header' }, h('h1', {}, 'API playground'), h('p', { class: 'muted' }, 'Requests go to this server with the identity you pick.')),
    picker.element,
    restPane,
    graphqlPane);

  (async () => {
    let document;
    try {
      document = await api.request('GET', '/openapi.json');
    } catch (error) {
      restPane.replaceChildren(h('h2', { id: 'rest-title' }, 'REST'), h('p', { class: 'form-error', role: 'alert' }, `The OpenAPI description could not be read: ${error.status === 403 ? 'this needs the master key or an admin user.' : describeError(error)}`));
      return;
    }
    drawRest(restPane, document, picker);
  })();

  return { element, title: 'API playground' };
}

function drawRest(pane, document, picker) {
  const operations = operationsOf(document);
  const tags = [...new Set(operations.map((operation) => operation.tag))];
  const tagSelect = h('select', { id: 'rest-class' }, tags.map((tag) => h('option', { value: tag }, tag)));
  const operationSelect = h('select', { id: 'rest-operation' });
  const params = h('div', { class: 'form-grid' });
  const bodyInput = h('textarea', { id: 'rest-body', rows: 8, spellcheck: 'false', class: 'code-input' });
  const bodyField = h('div', { class: 'field' }, h('label', { for: 'rest-body' }, 'Body (JSON)'), bodyInput);
  const result = h('div', { class: 'result-holder', 'aria-live': 'polite' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const selected = () => operations.find((operation) => operation.id === operationSelect.value);
  const defaultTag = tags.includes('Message') ? 'Message' : tags[0];
  tagSelect.value = defaultTag;

  const fillOperations = () => {
    const list = operations.filter((operation) => operation.tag === tagSelect.value);
    operationSelect.replaceChildren(...list.map((operation) => h('option', { value: operation.id }, `${operation.method} ${operation.path} — ${operation.summary}`)));
    fillOperation();
  };
  const fillOperation = () => {
    const operation = selected();
    if (!operation) return;
    params.replaceChildren(...operation.parameters.map((parameter, index) => {
      const id = `rest-param-${index}`;
      return h('div', { class: 'field' },
        h('label', { for: id }, `${parameter.name}${parameter.required ? ' (required)' : ''} `, h('span', { class: 'hint' }, parameter.in === 'path' ? 'in the path' : parameter.description ?? '')),
        h('input', { id, 'data-param': parameter.name, 'data-in': parameter.in, spellcheck: 'false', autocomplete: 'off' }));
    }));
    bodyField.hidden = !operation.requestBody;
    bodyInput.value = operation.requestBody ? JSON.stringify(exampleBody(document, operation.requestBody), null, 2) : '';
  };
  tagSelect.addEventListener('change', fillOperations);
  operationSelect.addEventListener('change', fillOperation);
  fillOperations();

  const send = async (event) => {
    event.preventDefault();
    error.hidden = true;
    const operation = selected();
    let path = operation.path;
    const query = new URLSearchParams();
    for (const input of params.querySelectorAll('[data-param]')) {
      const value = input.value.trim();
      if (input.dataset.in === 'path') {
        if (!value) {
          error.textContent = `Fill in ${input.dataset.param}.`;
          error.hidden = false;
          return;
        }
        path = path.replace(`{${input.dataset.param}}`, encodeURIComponent(value));
      } else if (value) {
        query.set(input.dataset.param, value);
      }
    }
    let body;
    if (operation.requestBody && bodyInput.value.trim()) {
      try {
        body = JSON.stringify(JSON.parse(bodyInput.value));
      } catch {
        error.textContent = 'The body is not valid JSON.';
        error.hidden = false;
        return;
      }
    }
    const url = `${api.base}${path}${query.toString() ? `?${query}` : ''}`;
    result.replaceChildren(h('p', { class: 'muted' }, 'Sending…'));
    const answer = await rawRequest({ method: operation.method, url, body, who: picker.who() });
    result.replaceChildren(resultPanel(answer));
  };

  pane.replaceChildren(
    h('h2', { id: 'rest-title' }, 'REST'),
    h('form', { class: 'stack', onsubmit: send },
      h('div', { class: 'grid-2' },
        h('div', { class: 'field' }, h('label', { for: 'rest-class' }, 'Class or group'), tagSelect),
        h('div', { class: 'field' }, h('label', { for: 'rest-operation' }, 'Operation'), operationSelect)),
      params,
      bodyField,
      error,
      h('button', { type: 'submit', class: 'button primary' }, icon('send'), 'Send request')),
    result);
}

function graphqlSection(picker) {
  const path = settings.graphqlPath || '/graphql';
  const query = h('textarea', { id: 'graphql-query', rows: 8, spellcheck: 'false', class: 'code-input' });
  query.value = '{\n  health\n}\n';
  const variables = h('textarea', { id: 'graphql-variables', rows: 3, spellcheck: 'false', class: 'code-input' });
  variables.value = '{}';
  const result = h('div', { class: 'result-holder', 'aria-live': 'polite' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const send = async (event) => {
    event.preventDefault();
    error.hidden = true;
    let parsed;
    try {
      parsed = variables.value.trim() ? JSON.parse(variables.value) : {};
    } catch {
      error.textContent = 'The variables are not valid JSON.';
      error.hidden = false;
      return;
    }
    result.replaceChildren(h('p', { class: 'muted' }, 'Sending…'));
    const answer = await rawRequest({ method: 'POST', url: path, body: JSON.stringify({ query: query.value, variables: parsed }), who: picker.who() });
    result.replaceChildren(resultPanel(answer));
  };
  const openGraphiql = () => {
    // GraphiQL keeps its headers panel in localStorage: the chosen user's token (never the
    // master key, which would outlive this tab there) is written for it to start with.
    const who = picker.who();
    const headers = { 'X-Parse-Application-Id': settings.appId };
    if (who.kind === 'session' && who.token) headers['X-Parse-Session-Token'] = who.token;
    try {
      localStorage.setItem('graphiql:headers', JSON.stringify(headers, null, 2));
    } catch {
      // Storage refused: GraphiQL starts with the app id alone.
    }
    if (who.kind === 'master') toast('GraphiQL opens with the app id only: paste the master key into its headers panel yourself.');
    window.open(`${path}/playground`, '_blank', 'noopener');
  };
  return h('section', { class: 'pane', 'aria-labelledby': 'graphql-title' },
    h('div', { class: 'row' }, h('h2', { id: 'graphql-title' }, 'GraphQL'),
      h('button', { type: 'button', class: 'button', onclick: openGraphiql }, 'Open GraphiQL ↗')),
    h('p', { class: 'hint' }, `Sent to ${path} with the identity above; GraphiQL (served by this server at ${path}/playground) has the schema explorer and completion.`),
    h('form', { class: 'stack', onsubmit: send },
      h('div', { class: 'field' }, h('label', { for: 'graphql-query' }, 'Query'), query),
      h('div', { class: 'field' }, h('label', { for: 'graphql-variables' }, 'Variables (JSON)'), variables),
      error,
      h('button', { type: 'submit', class: 'button primary' }, icon('send'), 'Run query')),
    result);
}
