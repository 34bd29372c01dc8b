// A fake OpenAI-compatible LLM for the SDK suite: `POST /v1/chat/completions` answers a
// streaming chat completion (Server-Sent Events) with `tokens`, one chunk every `delayMs`,
// then a finish chunk, a usage chunk and `data: [DONE]`. Every request is recorded.
//
//   const fake = await startFakeLlm({ tokens: ['Hello', ' there'], delayMs: 30 });
//   spawnServer({ extraArgs: ['--llm-base-url', fake.baseUrl, '--llm-model', 'fake-model'] });
//   fake.requests   // [{ method, path, headers, body }]
//   await fake.close();

import http from 'node:http';

export const DEFAULT_TOKENS = ['Hello', ' from', ' the', ' fake', ' model', ' over', ' SSE', '.'];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function chunk(model, choices, extra = {}) {
  return { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 0, model, choices, ...extra };
}

export async function startFakeLlm({ tokens = DEFAULT_TOKENS, delayMs = 30 } = {}) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (data) => {
      raw += data;
    });
    req.on('end', async () => {
      let body = null;
      try {
        body = raw ? JSON.parse(raw) : null;
      } catch {
        body = null;
      }
      requests.push({ method: req.method, path: req.url, headers: req.headers, body });
      if (req.method !== 'POST' || !/^(\/v1)?\/chat\/completions$/.test(req.url)) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}`, type: 'not_found' } }));
        return;
      }
      const model = (body && body.model) || 'fake-model';
      let closed = false;
      res.on('close', () => {
        closed = true;
      });
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'close' });
      const send = (data) => {
        if (!closed) res.write(`data: ${JSON.stringify(data)}\n\n`);
      };
      send(chunk(model, [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]));
      for (const [index, token] of tokens.entries()) {
        if (index > 0) await sleep(delayMs);
        if (closed) return;
        send(chunk(model, [{ index: 0, delta: { content: token }, finish_reason: null }]));
      }
      send(chunk(model, [{ index: 0, delta: {}, finish_reason: 'stop' }]));
      const promptTokens = 12;
      send(
        chunk(model, [], {
          usage: { prompt_tokens: promptTokens, completion_tokens: tokens.length, total_tokens: promptTokens + tokens.length },
        }),
      );
      if (!closed) res.end('data: [DONE]\n\n');
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}/v1`,
    tokens,
    text: tokens.join(''),
    requests,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
