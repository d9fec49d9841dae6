// A STAND-IN for the /metrics endpoint of the ConduitLLM Core API, for tests only: it is not the
// application. It serves, on 127.0.0.1, the metric families the app's OpenTelemetry Prometheus exporter
// produces for ASP.NET Core requests (schemas/metric-catalog.yaml: http_server_request_duration_seconds
// with the instrument's advised buckets, http_server_active_requests), with the labels the app sets,
// so that a real Prometheus loading our rule files computes the real SLO series from it. The test sets
// the traffic: requests per second, the share answered 5xx and the share slower than 10 s. Counters
// grow with the time between scrapes, as a live server's would.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Traffic {
  /** Routed API requests per second (health probes are added on top and excluded by the rules). */
  rps: number;
  /** Share of requests answered with HTTP 500. */
  errorRatio: number;
  /** Share of requests that take longer than 10 s (beyond the SLO's latency boundary). */
  slowRatio: number;
}

// ASP.NET Core's advised boundaries for http.server.request.duration (the catalog lists the same).
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const FAST_SECONDS = 0.04;
const SLOW_SECONDS = 12;

/** One label set of the histogram: its requests within 10 s (`fast`) and beyond (`slow`). */
interface Series {
  route: string;
  status: string;
  /** Duration of the fast requests. */
  seconds: number;
  fast: number;
  slow: number;
}

export class StandInExporter {
  readonly server: http.Server;
  private traffic: Traffic;
  private last = performance.now();
  private readonly series: Series[] = [];
  private carry = new Map<string, number>();

  constructor(traffic: Traffic) {
    this.traffic = traffic;
    for (const status of ['200', '500']) this.series.push({ route: '/v1/chat/completions', status, seconds: FAST_SECONDS, fast: 0, slow: 0 });
    this.series.push({ route: '/health/ready', status: '200', seconds: 0.002, fast: 0, slow: 0 });
    this.server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.advance();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(this.text());
    });
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The host:port Prometheus scrapes. */
  get hostPort(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Change the traffic from now on (what was served so far stays counted). */
  set(traffic: Partial<Traffic>): void {
    this.advance();
    this.traffic = { ...this.traffic, ...traffic };
  }

  /** Count the requests served since the last scrape, in whole requests (fractions carried over). */
  private advance(): void {
    const now = performance.now();
    const dt = (now - this.last) / 1000;
    this.last = now;
    const { rps, errorRatio, slowRatio } = this.traffic;
    const whole = (key: string, perSecond: number) => {
      const exact = (this.carry.get(key) ?? 0) + perSecond * dt;
      this.carry.set(key, exact - Math.floor(exact));
      return Math.floor(exact);
    };
    for (const s of this.series) {
      // One readiness probe a second; the routed requests split by status and duration.
      const perSecond = s.route.startsWith('/health') ? 1 : rps * (s.status === '500' ? errorRatio : 1 - errorRatio);
      const slowShare = s.route.startsWith('/health') ? 0 : slowRatio;
      s.fast += whole(`${s.route} ${s.status} fast`, perSecond * (1 - slowShare));
      s.slow += whole(`${s.route} ${s.status} slow`, perSecond * slowShare);
    }
  }

  private text(): string {
    const lines = ['# TYPE http_server_request_duration_seconds histogram', '# HELP http_server_request_duration_seconds Duration of HTTP server requests.'];
    for (const s of this.series) {
      const labels = `http_request_method="${s.route.startsWith('/health') ? 'GET' : 'POST'}",http_response_status_code="${s.status}",http_route="${s.route}",network_protocol_version="1.1",url_scheme="http"`;
      const count = s.fast + s.slow;
      for (const le of BUCKETS) lines.push(`http_server_request_duration_seconds_bucket{${labels},le="${le}"} ${s.seconds <= le ? s.fast : 0}`);
      lines.push(`http_server_request_duration_seconds_bucket{${labels},le="+Inf"} ${count}`);
      lines.push(`http_server_request_duration_seconds_sum{${labels}} ${(s.fast * s.seconds + s.slow * SLOW_SECONDS).toFixed(3)}`);
      lines.push(`http_server_request_duration_seconds_count{${labels}} ${count}`);
    }
    lines.push('# TYPE http_server_active_requests gauge', '# HELP http_server_active_requests Number of active HTTP server requests.');
    lines.push(`http_server_active_requests{http_request_method="POST",url_scheme="http"} ${Math.round(this.traffic.rps * FAST_SECONDS)}`);
    return lines.join('\n') + '\n';
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export async function startStandInExporter(traffic: Traffic): Promise<StandInExporter> {
  const e = new StandInExporter(traffic);
  await new Promise<void>((resolve) => e.server.listen(0, '127.0.0.1', resolve));
  return e;
}
