// Prints the error shapes the `node` multiline preset must keep whole, through Node's own
// paths: console.error of errors (util.inspect: causes, properties, AggregateError, async
// frames, a cause's shared frames elided) next to log lines, and the uncaught-exception
// report. Every record it prints is also written to the manifest (argument 1) as
// `L|T <bytes>\n<text>\n` (L: a log line, T: an error printed alone), and `R 0\n\n` before
// the uncaught exception: the rest of the output is one record.
//
// Run (tests/multiline_runtimes.rs does):
//   node traces.js MANIFEST 2> OUTPUT
'use strict';
const fs = require('fs');
const util = require('util');

const manifest = fs.openSync(process.argv[2], 'w');
function record(kind, text) {
  fs.writeSync(manifest, `${kind} ${Buffer.byteLength(text)}\n${text}\n`);
}
function log(level, message) {
  const text = `${new Date().toISOString()} ${level} ${message}`;
  console.error(text);
  record('L', text);
}
function printed(error) {
  console.error(error);
  record('T', util.inspect(error));
}

function inner() {
  return JSON.parse('{"broken": ');
}
function outer() {
  try {
    inner();
  } catch (cause) {
    throw new Error('config could not be read', { cause });
  }
}

async function main() {
  log('INFO', 'service starting');
  try {
    outer();
  } catch (e) {
    log('ERROR', 'start failed');
    printed(e);
  }
  const coded = new Error('connect refused\nafter 3 attempts');
  coded.code = 'ECONNREFUSED';
  coded.port = 5432;
  printed(coded);
  log('WARN', 'a message\nover three\nlines');
  try {
    await Promise.any([
      Promise.reject(new TypeError('first')),
      (async () => { await null; throw new RangeError('second'); })(),
    ]);
  } catch (e) {
    printed(e);
  }
  try {
    await (async function fetchUser() { await null; null.name; })();
  } catch (e) {
    printed(e);
  }
  log('INFO', 'after the errors');
  record('R', '');
  setTimeout(() => {
    const error = new Error('unhandled', { cause: new Error('underneath') });
    error.code = 'E_UNHANDLED';
    throw error;
  }, 0);
}

main();
