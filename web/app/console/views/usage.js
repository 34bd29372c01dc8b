// AI usage: tokens and replies per day, per persona and per user, failures and their
// causes, time to first token — charts drawn here as SVG and the same figures in tables,
// from `AiUsage` (master-only unless its CLP says otherwise) and the replies (`Message`,
// role assistant). Below, the replies being generated now (`GET /generations`, master
// key), each with a button that cancels it (`cancelGeneration`).

import { h, icon, toast } from '../../dom.js';
import { ApiError, describeError } from '../../errors.js';
import { barChart, compact, legend } from '../chart.js';
import { api } from '../session.js';
import { summarize } from '../usage.js';

const PAGE = 1000;
const MAX_PAGES = 20;

/** Every object of a query, page by page (at most MAX_PAGES × PAGE); `truncated` says so. */
async function findAll(className, where, keys) {
  const results = [];
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await api.find(className, { where, keys, order: '-createdAt', limit: PAGE, skip: page * PAGE || undefined });
    results.push(...(answer.results ?? []));
    if ((answer.results ?? []).length < PAGE) return { results, truncated: false };
  }
  return { results, truncated: true };
}

async function namesOf(className, ids, field) {
  const names = new Map();
  const wanted = [...new Set(ids.filter(Boolean))];
  for (let start = 0; start < wanted.length; start += 100) {
    const chunk = wanted.slice(start, start + 100);
    try {
      const answer = await api.find(className, { where: { objectId: { $in: chunk } }, keys: field, limit: chunk.length });
      for (const object of answer.results ?? []) names.set(object.objectId, object[field] ?? object.objectId);
    } catch {
      // Names are a nicety: ids stand in for what cannot be read.
    }
  }
  return names;
}

function refusalText(error) {
  if (error instanceof ApiError && (error.code === 119 || error.status === 403)) return 'Refused: reading this needs the master key (or a CLP that lets you).';
  return describeError(error);
}

function table(caption, columns, rows) {
  return h('div', { class: 'table-holder' }, h('table', { class: 'figures' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((column) => h('th', { scope: 'col', class: column.numeric ? 'numeric' : '' }, column.title)))),
    h('tbody', {}, rows.length
      ? rows.map((row) => h('tr', {}, columns.map((column, index) => (index === 0
        ? h('th', { scope: 'row' }, column.value(row))
        : h('td', { class: column.numeric ? 'numeric' : '' }, column.value(row))))))
      : h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, 'Nothing in this period.')))));
}

function card(title, value, note) {
  return h('div', { class: 'stat-card' }, h('span', { class: 'stat-title' }, title), h('span', { class: 'stat-value' }, value), note ? h('span', { class: 'hint' }, note) : null);
}

const ms = (value) => (value === null || value === undefined ? '–' : `${Math.round(value).toLocaleString()} ms`);

export function usageView() {
  let days = 30;
  let timer = null;
  let destroyed = false;
  const figures = h('div', { class: 'usage-figures' }, h('p', { class: 'muted', role: 'status' }, 'Loading usage…'));
  const running = h('div', { class: 'running' });
  const range = h('select', { id: 'usage-range', onchange: () => { days = Number(range.value); load(); } },
    [7, 30, 90, 365].map((value) => h('option', { value, selected: value === days }, `Last ${value} days`)));
  const element = h('section', { class: 'console-page usage-page' },
    h('header', { class: 'console-header' }, h('h1', {}, 'AI usage'),
      h('div', { class: 'row' }, h('label', { for: 'usage-range' }, 'Period'), range, h('button', { type: 'button', class: 'button', onclick: () => load() }, icon('regenerate'), 'Reload'))),
    h('section', { class: 'pane', 'aria-labelledby': 'running-title' }, h('h2', { id: 'running-title' }, 'Replies being generated'), running),
    figures);

  async function load() {
    figures.replaceChildren(h('p', { class: 'muted', role: 'status' }, 'Loading usage…'));
    const since = { __type: 'Date', iso: new Date(Date.now() - days * 86_400_000).toISOString() };
    const [usage, replies] = await Promise.allSettled([
      findAll('AiUsage', { createdAt: { $gte: since } }, 'user,persona,day,promptTokens,completionTokens,totalTokens,estimated,model'),
      findAll('Message', { role: 'assistant', createdAt: { $gte: since } }, 'status,error,firstTokenMs,createdAt,persona,model'),
    ]);
    if (destroyed) return;
    const usageRows = usage.status === 'fulfilled' ? usage.value.results : [];
    const replyRows = replies.status === 'fulfilled' ? replies.value.results : [];
    const personaIds = [...usageRows, ...replyRows].map((row) => row.persona?.objectId);
    const userIds = usageRows.map((row) => row.user?.objectId);
    const [personas, users] = await Promise.all([namesOf('Persona', personaIds, 'name'), namesOf('_User', userIds, 'username')]);
    if (destroyed) return;
    const today = new Date().toISOString().slice(0, 10);
    const summary = summarize(usageRows, replyRows, { personas, users }, { from: since.iso.slice(0, 10), to: today });
    const notes = [];
    if (usage.status === 'rejected') notes.push(h('p', { class: 'form-error', role: 'alert' }, `Token usage (AiUsage): ${refusalText(usage.reason)}`));
    if (replies.status === 'rejected') notes.push(h('p', { class: 'form-error', role: 'alert' }, `Replies: ${refusalText(replies.reason)}`));
    if (usage.value?.truncated || replies.value?.truncated) notes.push(h('p', { class: 'notice' }, `Only the newest ${(MAX_PAGES * PAGE).toLocaleString()} rows are counted; pick a shorter period for exact figures.`));
    const labels = summary.days.map((day) => day.day);
    const tokenSeries = [
      { name: 'Prompt tokens', values: summary.days.map((day) => day.prompt), className: 'series-1' },
      { name: 'Completion tokens', values: summary.days.map((day) => day.completion), className: 'series-2' },
    ];
    const replySeries = [
      { name: 'Answered', values: summary.days.map((day) => day.replies - day.failed), className: 'series-1' },
      { name: 'Failed', values: summary.days.map((day) => day.failed), className: 'series-bad' },
    ];
    const ttftSeries = [{ name: 'Median time to first token', values: summary.days.map((day) => day.firstTokenP50 ?? 0), className: 'series-2' }];
    const chart = (title, series, unit) => h('figure', { class: 'chart-figure' },
      h('figcaption', {}, title),
      summary.totals.replies || summary.totals.total ? barChart({ labels, series, label: title, unit }) : h('p', { class: 'muted' }, 'No replies in this period.'),
      series.length > 1 ? legend(series) : null);
    figures.replaceChildren(
      ...notes,
      h('div', { class: 'stat-cards' },
        card('Tokens', compact(summary.totals.total), `${compact(summary.totals.prompt)} in · ${compact(summary.totals.completion)} out`),
        card('Replies', summary.totals.replies.toLocaleString(), `${summary.statuses.complete} complete · ${summary.statuses.cancelled} cancelled`),
        card('Failed', summary.failures.total.toLocaleString(), summary.totals.replies ? `${((100 * summary.failures.total) / summary.totals.replies).toFixed(1)}% of replies` : ''),
        card('Time to first token', ms(summary.firstToken.p50), `median · p90 ${ms(summary.firstToken.p90)} · max ${ms(summary.firstToken.max)}`)),
      h('div', { class: 'chart-grid' },
        chart('Tokens per day', tokenSeries, ' tokens'),
        chart('Replies per day', replySeries, ' replies'),
        chart('Time to first token per day (median)', ttftSeries, ' ms')),
      h('div', { class: 'grid-2 tables' },
        table('Per persona', [
          { title: 'Persona', value: (row) => row.name },
          { title: 'Replies', value: (row) => row.replies.toLocaleString(), numeric: true },
          { title: 'Tokens in', value: (row) => row.prompt.toLocaleString(), numeric: true },
          { title: 'Tokens out', value: (row) => row.completion.toLocaleString(), numeric: true },
        ], summary.byPersona),
        table('Per user', [
          { title: 'User', value: (row) => row.name },
          { title: 'Replies', value: (row) => row.replies.toLocaleString(), numeric: true },
          { title: 'Tokens in', value: (row) => row.prompt.toLocaleString(), numeric: true },
          { title: 'Tokens out', value: (row) => row.completion.toLocaleString(), numeric: true },
        ], summary.byUser)),
      table('Failures by cause', [
        { title: 'Cause', value: (row) => row.cause },
        { title: 'Replies', value: (row) => row.count.toLocaleString(), numeric: true },
        { title: 'Latest error', value: (row) => row.example },
      ], summary.failures.byCause),
      table('Per day', [
        { title: 'Day', value: (row) => row.day },
        { title: 'Replies', value: (row) => row.replies.toLocaleString(), numeric: true },
        { title: 'Failed', value: (row) => row.failed.toLocaleString(), numeric: true },
        { title: 'Tokens in', value: (row) => row.prompt.toLocaleString(), numeric: true },
        { title: 'Tokens out', value: (row) => row.completion.toLocaleString(), numeric: true },
        { title: 'First token (median)', value: (row) => ms(row.firstTokenP50), numeric: true },
      ], [...summary.days].reverse()),
    );
  }

  async function loadRunning() {
    clearTimeout(timer);
    if (destroyed) return;
    try {
      const answer = await api.request('GET', '/generations');
      drawRunning(answer.results ?? []);
      timer = setTimeout(loadRunning, 2000);
    } catch (error) {
      running.replaceChildren(h('p', { class: 'muted' }, error instanceof ApiError && error.status === 403 ? 'The replies being generated are shown to the master key only.' : describeError(error)));
      if (!(error instanceof ApiError)) timer = setTimeout(loadRunning, 5000);
    }
  }

  function drawRunning(list) {
    if (!list.length) {
      running.replaceChildren(h('p', { class: 'muted', 'data-running': '0' }, 'No reply is being generated right now.'));
      return;
    }
    running.replaceChildren(table(`${list.length} running`, [
      { title: 'Reply', value: (row) => h('a', { href: `#/data/Message?id=${encodeURIComponent(row.messageId)}` }, row.messageId) },
      { title: 'Persona', value: (row) => row.persona ?? row.personaId ?? '' },
      { title: 'Session', value: (row) => (row.sessionId ? h('a', { href: `#/data/ChatSession?id=${encodeURIComponent(row.sessionId)}` }, row.sessionId) : '') },
      { title: 'Model', value: (row) => row.model ?? '' },
      { title: 'Running for', value: (row) => (row.seconds !== undefined ? `${row.seconds.toFixed(1)} s` : `since ${row.startedAt?.iso ?? row.startedAt ?? ''}`), numeric: true },
      { title: 'Characters', value: (row) => (row.characters ?? 0).toLocaleString(), numeric: true },
      { title: 'Where', value: (row) => (row.here ? 'this server' : 'another server') },
      { title: 'Cancel', value: (row) => h('button', { type: 'button', class: 'button danger small', 'aria-label': `Cancel reply ${row.messageId}`, onclick: async (event) => {
        event.target.disabled = true;
        try {
          await api.call('cancelGeneration', { messageId: row.messageId });
          toast(`Cancelled ${row.messageId}.`);
        } catch (error) {
          toast(describeError(error), 'error');
        }
        loadRunning();
      } }, 'Cancel') },
    ], list));
  }

  load();
  loadRunning();
  return {
    element,
    title: 'AI usage',
    destroy() {
      destroyed = true;
      clearTimeout(timer);
    },
  };
}
