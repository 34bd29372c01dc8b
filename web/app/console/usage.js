// AI usage figures from what the server records: `AiUsage` (one row per reply with its
// tokens, user, persona and UTC day) and the replies themselves (`Message` with role
// `assistant`: status, error, firstTokenMs). Pure functions: the Usage view fetches the
// rows with the operator's credentials and draws what these return.

/** The UTC day (YYYY-MM-DD) of an ISO date or a Parse Date. */
export function dayOf(date) {
  const iso = typeof date === 'string' ? date : date?.iso;
  return typeof iso === 'string' ? iso.slice(0, 10) : '';
}

/** Every day from `first` to `last` (YYYY-MM-DD), inclusive; at most 400. */
export function daysBetween(first, last) {
  const days = [];
  const start = new Date(`${first}T00:00:00Z`);
  const end = new Date(`${last}T00:00:00Z`);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return days;
  for (let day = start; day <= end && days.length < 400; day = new Date(day.getTime() + 86_400_000)) {
    days.push(day.toISOString().slice(0, 10));
  }
  return days;
}

/** A short cause for a failed reply's error text, to group failures by. */
export function failureCause(error) {
  const text = String(error ?? '').toLowerCase();
  if (!text) return 'unknown';
  if (text.includes('no provider') || text.includes('not configured') || text.includes('configure')) return 'no provider configured';
  if (text.includes('quota')) return 'daily token quota';
  if (text.includes('at once') || text.includes('concurrent') || text.includes('too many replies')) return 'concurrency limit';
  if (text.includes('stopped') || text.includes('orphan')) return 'server stopped';
  if (text.includes('timed out') || text.includes('timeout')) return 'timeout';
  if (text.includes('rate') && text.includes('limit')) return 'rate limited';
  if (text.includes('context') && (text.includes('length') || text.includes('window') || text.includes('too long'))) return 'context too long';
  if (/\b(4\d\d|5\d\d)\b/.test(text) || text.includes('status')) return 'provider error';
  if (text.includes('connect') || text.includes('network') || text.includes('stream')) return 'connection';
  return 'other';
}

/** The `q` quantile (0–1) of sorted numbers. */
export function quantile(sorted, q) {
  if (!sorted.length) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index];
}

const id = (pointer) => (pointer && typeof pointer === 'object' ? pointer.objectId : null);

/**
 * The figures: `{days, byPersona, byUser, failures, firstToken, statuses, totals}`.
 * `names.personas` / `names.users` map objectIds to names for the tables; `period`
 * (`{from, to}`, YYYY-MM-DD) makes `days` cover every day of it, not only those with data.
 */
export function summarize(usage, replies, names = {}, period = {}) {
  const byDay = new Map();
  const day = (key) => {
    if (!byDay.has(key)) byDay.set(key, { day: key, prompt: 0, completion: 0, total: 0, replies: 0, failed: 0, firstTokenMs: [] });
    return byDay.get(key);
  };
  const group = (map, key, name) => {
    if (!map.has(key)) map.set(key, { id: key, name, prompt: 0, completion: 0, total: 0, replies: 0 });
    return map.get(key);
  };
  const byPersona = new Map();
  const byUser = new Map();
  const totals = { prompt: 0, completion: 0, total: 0, replies: 0, estimated: 0 };
  for (const row of usage) {
    const prompt = Number(row.promptTokens) || 0;
    const completion = Number(row.completionTokens) || 0;
    const total = Number(row.totalTokens) || prompt + completion;
    const entries = [
      day(row.day || dayOf(row.createdAt)),
      group(byPersona, id(row.persona) ?? '(none)', names.personas?.get(id(row.persona)) ?? id(row.persona) ?? '(none)'),
      group(byUser, id(row.user) ?? '(none)', names.users?.get(id(row.user)) ?? id(row.user) ?? '(none)'),
    ];
    for (const entry of entries) {
      entry.prompt += prompt;
      entry.completion += completion;
      entry.total += total;
    }
    entries[1].replies += 1;
    entries[2].replies += 1;
    totals.prompt += prompt;
    totals.completion += completion;
    totals.total += total;
    if (row.estimated) totals.estimated += 1;
  }
  const statuses = { complete: 0, failed: 0, cancelled: 0, streaming: 0 };
  const causes = new Map();
  const firstTokens = [];
  for (const reply of replies) {
    const entry = day(dayOf(reply.createdAt));
    entry.replies += 1;
    totals.replies += 1;
    const status = reply.status ?? 'complete';
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === 'failed') {
      entry.failed += 1;
      const cause = failureCause(reply.error);
      const known = causes.get(cause) ?? { cause, count: 0, example: reply.error ?? '', last: '' };
      known.count += 1;
      if ((reply.createdAt ?? '') > known.last) {
        known.last = reply.createdAt ?? '';
        known.example = reply.error ?? '';
      }
      causes.set(cause, known);
    }
    if (typeof reply.firstTokenMs === 'number') {
      firstTokens.push(reply.firstTokenMs);
      entry.firstTokenMs.push(reply.firstTokenMs);
    }
  }
  const keys = [...byDay.keys()].filter(Boolean).sort();
  const first = [period.from, keys[0]].filter(Boolean).sort()[0];
  const last = [period.to, keys[keys.length - 1]].filter(Boolean).sort().pop();
  const days = first && last ? daysBetween(first, last) : [];
  firstTokens.sort((a, b) => a - b);
  const sortByTotal = (map) => [...map.values()].sort((a, b) => b.total - a.total || b.replies - a.replies);
  return {
    days: days.map((key) => {
      const entry = byDay.get(key) ?? { day: key, prompt: 0, completion: 0, total: 0, replies: 0, failed: 0, firstTokenMs: [] };
      const sorted = [...entry.firstTokenMs].sort((a, b) => a - b);
      return { ...entry, firstTokenMs: undefined, firstTokenP50: quantile(sorted, 0.5), firstTokenP90: quantile(sorted, 0.9) };
    }),
    byPersona: sortByTotal(byPersona),
    byUser: sortByTotal(byUser),
    failures: { total: statuses.failed, byCause: [...causes.values()].sort((a, b) => b.count - a.count) },
    firstToken: {
      count: firstTokens.length,
      p50: quantile(firstTokens, 0.5),
      p90: quantile(firstTokens, 0.9),
      max: firstTokens.length ? firstTokens[firstTokens.length - 1] : null,
    },
    statuses,
    totals,
  };
}
