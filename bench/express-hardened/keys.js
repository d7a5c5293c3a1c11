// Writes an ES256 key pair and a bearer token (valid for a day) into the
// directory given as argument, for bench/run: DIR/es256.pub.pem, DIR/token.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const jwt = require('jsonwebtoken');

const dir = process.argv[2];
const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
fs.writeFileSync(path.join(dir, 'es256.pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
const token = jwt.sign({ sub: 'bench-user', roles: ['user'] }, privateKey, {
  algorithm: 'ES256',
  issuer: 'https://idp.example.com',
  audience: 'api',
  expiresIn: '1d',
});
fs.writeFileSync(path.join(dir, 'token'), token);
