// A static file server on 127.0.0.1 (a free port), as a web server would serve a chart repository or a
// release mirror. It records every request and can cut a transfer off after half its body, which is
// what a broken download looks like to the client.
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';

export interface Served {
  url: string;
  port: number;
  /** Every request, "GET /<path>". */
  requests: string[];
  /** Paths whose transfer is cut off after half the body (add to it at any time). */
  cutShort: Set<string>;
  close: () => Promise<void>;
}

const TYPES: Record<string, string> = { '.yaml': 'application/yaml', '.yml': 'application/yaml', '.tgz': 'application/gzip', '.prov': 'text/plain', '.asc': 'text/plain' };

export async function serveDirectory(root: string): Promise<Served> {
  const requests: string[] = [];
  const cutShort = new Set<string>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push(`${req.method} ${url.pathname}`);
    const file = path.resolve(root, '.' + decodeURIComponent(url.pathname));
    const st = file.startsWith(path.resolve(root) + path.sep) ? fs.statSync(file, { throwIfNoEntry: false }) : undefined;
    if (!st?.isFile() || req.method !== 'GET') {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': st.size });
    if (cutShort.has(url.pathname)) {
      const half = fs.readFileSync(file).subarray(0, Math.floor(st.size / 2));
      res.write(half, () => setTimeout(() => req.socket.destroy(), 50));
      return;
    }
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    cutShort,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
