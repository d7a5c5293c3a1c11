// The naive fixture's two benchmark routes with the in-process security
// stack the Express hardening guides recommend: helmet, cors, a rate limit
// (express-rate-limit, memory store, set never to trigger), express.json
// with a limit, zod validation of the POST body, and jsonwebtoken ES256
// verification of a bearer token. bench/run compares it with the naive
// fixture behind Portcullis running the same controls (issue 6).
//
//   PORT=8000 JWT_PUBLIC_KEY=keys/es256.pub.pem node app.js
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const express = require('express');
const helmet = require('helmet');
const cors = require('cors');
const { rateLimit } = require('express-rate-limit');
const jwt = require('jsonwebtoken');
const { z } = require('zod');

// Parsed once (a KeyObject): jsonwebtoken would otherwise parse the PEM on
// every verification.
const publicKey = crypto.createPublicKey(fs.readFileSync(process.env.JWT_PUBLIC_KEY));
const app = express();
app.disable('x-powered-by');
app.use(helmet());
app.use(cors({ origin: ['https://app.example.com'], credentials: true }));
app.use(rateLimit({ windowMs: 60_000, limit: 1_000_000, standardHeaders: 'draft-7', legacyHeaders: false }));
app.use(express.json({ limit: '100kb' }));
app.use((req, res, next) => {
  const m = /^Bearer (.+)$/i.exec(req.get('authorization') || '');
  if (!m) return res.status(401).json({ error: 'unauthenticated' });
  jwt.verify(m[1], publicKey, { algorithms: ['ES256'], issuer: 'https://idp.example.com', audience: 'api' }, (err, claims) => {
    if (err) return res.status(401).json({ error: 'invalid_token' });
    req.user = claims;
    next();
  });
});

const Echo = z.strictObject({ name: z.string().max(2000), n: z.number().int().optional() });

app.get('/api/hello', (req, res) => res.json({ hello: 'world' }));
app.post('/api/echo', (req, res) => {
  const r = Echo.safeParse(req.body);
  if (!r.success) return res.status(400).json({ error: 'invalid_input' });
  res.json(r.data);
});
app.use((err, req, res, next) => res.status(err.status || 500).json({ error: 'error' }));

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
