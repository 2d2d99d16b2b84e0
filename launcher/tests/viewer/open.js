// Opens the trace-event JSON file given as the argument in speedscope, a trace viewer that reads
// the Chrome trace-event format, in headless Chromium (Debian's /usr/bin/chromium, or the path in
// $CHROMIUM), all on loopback; prints what the viewer showed as one JSON object on stdout:
//   { "tracks": [the header of each profile, in the viewer's order],
//     "calls": [for each, the call names its sandwich table lists],
//     "imported": whether it said it imported the file as trace events,
//     "errors": [errors the page raised] }
// Used by launcher/tests/job.rs (trace_opens_in_a_trace_viewer); install with `npm ci` here.
const { chromium } = require('playwright-core');
const http = require('http');
const fs = require('fs');
const path = require('path');

const trace = process.argv[2];
const root = path.join(__dirname, 'node_modules/speedscope/dist/release');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.wasm': 'application/wasm' };

const server = http.createServer((req, res) => {
  const url = decodeURIComponent(req.url.split(/[?#]/)[0]);
  const file = url === '/trace.json' ? trace : path.join(root, path.normalize(url === '/' ? 'index.html' : url));
  if (url !== '/trace.json' && !file.startsWith(root)) { res.writeHead(403); res.end(); return; }
  fs.readFile(file, (e, data) => {
    if (e) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(data);
  });
});

async function main(port) {
  // The flags keep Chromium off the network this machine does not have.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const out = { tracks: [], calls: [], imported: false, errors: [] };
  try {
    const page = await browser.newPage();
    page.on('console', m => { if (m.text().includes('Importing as Trace Event Format')) out.imported = true; });
    page.on('pageerror', e => out.errors.push(e.message));
    const base = `http://127.0.0.1:${port}`;
    await page.goto(`${base}/index.html#profileURL=${encodeURIComponent(base + '/trace.json')}`);
    const header = async () => (await page.evaluate(() => document.body.innerText)).split('\n')[1] || '';
    await page.waitForFunction(() => /\(\d+\/\d+\)/.test(document.body.innerText), null, { timeout: 20000 });
    const total = Number((await header()).match(/\((\d+)\/(\d+)\)/)[2]);
    for (let i = 0; i < total; i++) {
      out.tracks.push((await header()).replace(/ \(\d+\/\d+\)$/, ''));
      // The sandwich view: a table of every call name with its total time.
      await page.getByText('Sandwich', { exact: false }).first().click();
      const rows = () => {
        const lines = document.body.innerText.split('\n');
        const at = lines.findIndex(l => l.includes('Symbol Name'));
        return at < 0 ? [] : lines.slice(at + 1).map(l => l.trim())
          .filter(l => /^[a-z_]+( |$)/.test(l)).map(l => l.split(' ')[0]);
      };
      await page.waitForFunction(`(${rows})().length > 0`, null, { timeout: 10000 }).catch(() => {});
      out.calls.push([...new Set(await page.evaluate(rows))]);
      await page.getByText('Time Order', { exact: false }).first().click();
      await page.keyboard.press('n');
      if (i + 1 < total) {
        await page.waitForFunction(n => document.body.innerText.includes(`(${n}/`), i + 2);
      }
    }
  } finally {
    await browser.close();
  }
  return out;
}

server.listen(0, '127.0.0.1', () => {
  main(server.address().port)
    .then(out => { console.log(JSON.stringify(out)); server.close(); })
    .catch(e => { console.error(`viewer: ${e.message}`); server.close(); process.exit(1); });
});
