// The Conduit dashboards as code. `renderDashboards` turns these definitions into the committed
// dashboards/*.json; each dashboard's version comes from dashboards/versions.yaml, whose history
// records the content digest of every version (a content change needs a new version, and a
// dashboards/CHANGELOG.md entry for it).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { UserError } from '../core/errors.ts';
import { repoPath } from '../core/paths.ts';
import { buildDashboard, type DashboardSpec, type PanelSpec, type VariableSpec } from './grafana.ts';

export const DASHBOARDS_DIR = repoPath('dashboards');
export const VERSIONS_FILE = path.join(DASHBOARDS_DIR, 'versions.yaml');
export const CHANGELOG_FILE = path.join(DASHBOARDS_DIR, 'CHANGELOG.md');

// Selectors shared by the panels. Every selector carries the job/instance matchers the
// dashboard linter asks for, plus the namespace of the release.
const SEL = 'namespace=~"$namespace", job=~"$job", instance=~"$instance"';
const USER_ROUTES = 'http_route!~"|/health.*|/metrics"';
const RI = '$__rate_interval';
const APP_JOBS = 'job=~".*conduit.*-(api|admin)"';
const API_JOBS = 'job=~".*conduit.*-api"';

function appVariables(jobFilter: string, metric = 'up'): VariableSpec[] {
  return [
    { name: 'namespace', label: 'Namespace', query: `${metric}{${jobFilter}}`, promLabel: 'namespace', description: 'Namespace of the Conduit release.' },
    {
      name: 'job',
      label: 'Job',
      query: `${metric}{namespace=~"$namespace", ${jobFilter}}`,
      promLabel: 'job',
      description: "Scrape job: conduit-api and/or conduit-admin with the chart's ServiceMonitors (or the API/Admin Service name with your own scrape configuration).",
    },
    { name: 'instance', label: 'Instance', query: `${metric}{namespace=~"$namespace", job=~"$job"}`, promLabel: 'instance', description: 'Pod address (one per replica).' },
  ];
}

const rate = (series: string, extra = '', by = '') => `sum${by ? ` by (${by}) ` : ''}(rate(${series}{${SEL}${extra ? `, ${extra}` : ''}}[${RI}]))`;
/** errors / total, 0 (not "no data") when there is traffic but no error series. */
const ratio = (series: string, errors: string, base: string, by = '') =>
  `(${rate(series, `${base}, ${errors}`, by)} or ${by ? `0 * ${rate(series, base, by)}` : 'vector(0)'}) / ${rate(series, base, by)}`;
const quantile = (q: number, histogram: string, extra = '', by = '') =>
  `histogram_quantile(${q}, sum by (${['le', ...(by ? [by] : [])].join(', ')}) (rate(${histogram}_bucket{${SEL}${extra ? `, ${extra}` : ''}}[${RI}])))`;

// ---------------------------------------------------------------------------------------------

const overview: DashboardSpec = {
  uid: 'conduit-overview',
  title: 'Conduit / Overview & SLO',
  description: 'Traffic, errors, latency and error budgets of the Conduit Core API and Admin API (ASP.NET Core metrics of the OpenTelemetry exporter).',
  tags: ['conduit', 'slo'],
  variables: appVariables(APP_JOBS),
  rows: [
    {
      title: 'Traffic',
      panels: [
        {
          type: 'stat',
          title: 'Request rate',
          unit: 'reqps',
          description: 'Requests per second answered by the selected pods (health probes and /metrics excluded).',
          targets: [{ expr: rate('http_server_request_duration_seconds_count', USER_ROUTES) }],
        },
        {
          type: 'stat',
          title: 'Error ratio (5xx)',
          unit: 'percentunit',
          decimals: 2,
          thresholds: [
            [0.005, 'orange'],
            [0.05, 'red'],
          ],
          description: 'Share of requests answered with a 5xx status over the last rate interval. The availability objective allows 0.5 %.',
          targets: [{ expr: ratio('http_server_request_duration_seconds_count', 'http_response_status_code=~"5.."', USER_ROUTES) }],
        },
        {
          type: 'stat',
          title: 'Active requests',
          unit: 'short',
          description: 'Requests in progress right now, streaming responses included (the optional HPA metric).',
          targets: [{ expr: `sum(http_server_active_requests{${SEL}})` }],
        },
        {
          type: 'stat',
          title: 'Latency p99',
          unit: 's',
          thresholds: [
            [5, 'orange'],
            [7.5, 'red'],
          ],
          description: '99th percentile request duration. The histogram ends at 10 s: 10 s means 10 s or more.',
          targets: [{ expr: quantile(0.99, 'http_server_request_duration_seconds', USER_ROUTES) }],
        },
        {
          title: 'Requests by status class',
          unit: 'reqps',
          stack: true,
          description: 'Request rate split by HTTP status class.',
          targets: ['2', '3', '4', '5'].map((c) => ({ expr: rate('http_server_request_duration_seconds_count', `${USER_ROUTES}, http_response_status_code=~"${c}.."`), legend: `${c}xx` })),
        },
        {
          title: 'Error ratio by job',
          unit: 'percentunit',
          min: 0,
          description: 'Share of 5xx answers per scrape job (API, Admin).',
          targets: [{ expr: ratio('http_server_request_duration_seconds_count', 'http_response_status_code=~"5.."', USER_ROUTES, 'job'), legend: '{{job}}' }],
        },
        {
          title: 'Latency percentiles',
          unit: 's',
          min: 0,
          description: 'p50, p90 and p99 of request duration over all selected pods. Streaming requests last until the stream ends.',
          targets: [0.5, 0.9, 0.99].map((q) => ({ expr: quantile(q, 'http_server_request_duration_seconds', USER_ROUTES), legend: `p${q * 100}` })),
        },
        {
          title: 'Latency p99 by route',
          unit: 's',
          min: 0,
          description: '99th percentile request duration per endpoint route.',
          targets: [{ expr: quantile(0.99, 'http_server_request_duration_seconds', USER_ROUTES, 'http_route'), legend: '{{http_route}}' }],
        },
        {
          title: '5xx by route',
          unit: 'reqps',
          min: 0,
          description: 'Rate of 5xx answers per route and status code.',
          targets: [
            {
              expr: rate('http_server_request_duration_seconds_count', `${USER_ROUTES}, http_response_status_code=~"5.."`, 'http_route, http_response_status_code'),
              legend: '{{http_route}} {{http_response_status_code}}',
            },
          ],
        },
        {
          title: 'Active requests by instance',
          unit: 'short',
          min: 0,
          description: 'Requests in progress per pod; uneven values point at sticky clients or a slow pod.',
          targets: [{ expr: `sum by (instance) (http_server_active_requests{${SEL}})`, legend: '{{instance}}' }],
        },
        {
          title: 'Rate-limit rejections',
          unit: 'reqps',
          min: 0,
          description: 'Requests rejected by the ASP.NET Core rate limiter (answered 429), by policy and limiter.',
          targets: [
            {
              expr: rate('aspnetcore_rate_limiting_requests_total', 'aspnetcore_rate_limiting_result!="acquired"', 'aspnetcore_rate_limiting_policy, aspnetcore_rate_limiting_result'),
              legend: '{{aspnetcore_rate_limiting_policy}} {{aspnetcore_rate_limiting_result}}',
            },
          ],
        },
        {
          title: 'Rate-limit queue',
          unit: 'short',
          min: 0,
          description: 'Requests waiting in a rate-limiter queue.',
          targets: [{ expr: `sum by (aspnetcore_rate_limiting_policy) (aspnetcore_rate_limiting_queued_requests{${SEL}})`, legend: '{{aspnetcore_rate_limiting_policy}}' }],
        },
      ],
    },
    {
      title: 'Service level objectives (Core API, 30 days)',
      panels: [
        {
          type: 'stat',
          title: 'Availability (30 days)',
          unit: 'percentunit',
          decimals: 3,
          baseColor: 'red',
          thresholds: [[0.995, 'green']],
          description: 'Share of API requests without a 5xx answer over 30 days (recording rule slo:sli_error:ratio_rate30d). Objective 99.5 %.',
          targets: [{ expr: `1 - max(slo:sli_error:ratio_rate30d{slo="conduit-api-availability", namespace=~"$namespace", job=~"$job"})` }],
        },
        {
          type: 'stat',
          title: 'Availability error budget left',
          unit: 'percentunit',
          decimals: 1,
          baseColor: 'red',
          thresholds: [
            [0, 'orange'],
            [0.25, 'green'],
          ],
          description: 'Share of the 30-day availability error budget (0.5 % of requests) not yet spent; negative when overspent.',
          targets: [{ expr: `min(slo:error_budget_remaining:ratio{slo="conduit-api-availability", namespace=~"$namespace", job=~"$job"})` }],
        },
        {
          type: 'stat',
          title: 'Requests within 10 s (30 days)',
          unit: 'percentunit',
          decimals: 2,
          baseColor: 'red',
          thresholds: [[0.95, 'green']],
          description: 'Share of API requests completed within 10 s over 30 days. Objective 95 %.',
          targets: [{ expr: `1 - max(slo:sli_error:ratio_rate30d{slo="conduit-api-latency", namespace=~"$namespace", job=~"$job"})` }],
        },
        {
          type: 'stat',
          title: 'Latency error budget left',
          unit: 'percentunit',
          decimals: 1,
          baseColor: 'red',
          thresholds: [
            [0, 'orange'],
            [0.25, 'green'],
          ],
          description: 'Share of the 30-day latency error budget (5 % of requests) not yet spent.',
          targets: [{ expr: `min(slo:error_budget_remaining:ratio{slo="conduit-api-latency", namespace=~"$namespace", job=~"$job"})` }],
        },
        {
          title: 'Availability burn rate',
          unit: 'none',
          min: 0,
          description: 'How many times faster than sustainable the availability budget burns, per window. Pages at 14.4 (1 h) and 6 (6 h), tickets at 3 (1 d) and 1 (3 d).',
          targets: ['5m', '1h', '6h', '1d', '3d'].map((w) => ({ expr: `max(slo:sli_error:ratio_rate${w}{slo="conduit-api-availability", namespace=~"$namespace", job=~"$job"}) / 0.005`, legend: w })),
        },
        {
          title: 'Latency burn rate',
          unit: 'none',
          min: 0,
          description: 'How many times faster than sustainable the latency budget (5 % slower than 10 s) burns, per window.',
          targets: ['5m', '1h', '6h', '1d', '3d'].map((w) => ({ expr: `max(slo:sli_error:ratio_rate${w}{slo="conduit-api-latency", namespace=~"$namespace", job=~"$job"}) / 0.05`, legend: w })),
        },
      ],
    },
  ],
};

const PROVIDER = 'server_address=~"$provider"';
const upstream: DashboardSpec = {
  uid: 'conduit-upstream',
  title: 'Conduit / Upstream providers',
  description: 'Calls from the Conduit API to LLM providers (HttpClient metrics, one series per provider host): volume, errors, throttling, latency and the gateway overhead.',
  tags: ['conduit', 'llm'],
  variables: [
    ...appVariables(API_JOBS),
    {
      name: 'provider',
      label: 'Provider',
      query: `http_client_request_duration_seconds_count{namespace=~"$namespace", job=~"$job"}`,
      promLabel: 'server_address',
      description: 'Provider host (server_address).',
    },
  ],
  rows: [
    {
      title: 'Volume and errors',
      panels: [
        {
          title: 'Calls by provider',
          unit: 'reqps',
          min: 0,
          stack: true,
          description: 'Outbound calls per second per provider host.',
          targets: [{ expr: rate('http_client_request_duration_seconds_count', PROVIDER, 'server_address'), legend: '{{server_address}}' }],
        },
        {
          title: 'Provider error ratio',
          unit: 'percentunit',
          min: 0,
          description: 'Share of calls per provider ending in a 5xx answer, a timeout or a connection error (4xx other than 429 are client errors and not counted).',
          targets: [{ expr: ratio('http_client_request_duration_seconds_count', 'error_type!="", error_type!~"4.."', PROVIDER, 'server_address'), legend: '{{server_address}}' }],
        },
        {
          title: 'Errors by provider and type',
          unit: 'reqps',
          min: 0,
          description: 'Failed calls per second by provider and error type: a status code (e.g. 503) or an error class (connection_error, name_resolution_error, a timeout exception).',
          targets: [
            { expr: rate('http_client_request_duration_seconds_count', `${PROVIDER}, error_type!="", error_type!~"4.."`, 'server_address, error_type'), legend: '{{server_address}} {{error_type}}' },
          ],
        },
        {
          title: '429 answers by provider',
          unit: 'reqps',
          min: 0,
          description: 'Calls throttled by the provider (429 Too Many Requests): the account quota or rate limit is exhausted.',
          targets: [{ expr: rate('http_client_request_duration_seconds_count', `${PROVIDER}, http_response_status_code="429"`, 'server_address'), legend: '{{server_address}}' }],
        },
      ],
    },
    {
      title: 'Latency',
      panels: [
        {
          title: 'Provider latency p95',
          unit: 's',
          min: 0,
          description: '95th percentile time until the provider answers (headers for streamed calls). The histogram ends at 10 s.',
          targets: [{ expr: quantile(0.95, 'http_client_request_duration_seconds', PROVIDER, 'server_address'), legend: '{{server_address}}' }],
        },
        {
          title: 'Provider latency p50',
          unit: 's',
          min: 0,
          description: 'Median time until the provider answers.',
          targets: [{ expr: quantile(0.5, 'http_client_request_duration_seconds', PROVIDER, 'server_address'), legend: '{{server_address}}' }],
        },
        {
          title: 'Gateway vs provider time (mean)',
          unit: 's',
          min: 0,
          description: 'Mean duration of an API request (total) next to the mean duration of a provider call; the gap is time spent in the gateway (auth, routing, caching, streaming to the client).',
          targets: [
            {
              expr: `${rate('http_server_request_duration_seconds_sum', `${USER_ROUTES}, http_route=~"/v1/.*"`)} / ${rate('http_server_request_duration_seconds_count', `${USER_ROUTES}, http_route=~"/v1/.*"`)}`,
              legend: 'API request (total)',
            },
            { expr: `${rate('http_client_request_duration_seconds_sum', PROVIDER)} / ${rate('http_client_request_duration_seconds_count', PROVIDER)}`, legend: 'provider call' },
          ],
        },
        {
          title: 'Calls in flight and open connections',
          unit: 'short',
          min: 0,
          description: 'Provider calls in progress, and the HTTP connections open to each provider by state (active, idle).',
          targets: [
            { expr: `sum by (server_address) (http_client_active_requests{${SEL}, ${PROVIDER}})`, legend: 'in flight {{server_address}}' },
            { expr: `sum by (server_address, http_connection_state) (http_client_open_connections{${SEL}, ${PROVIDER}})`, legend: '{{http_connection_state}} {{server_address}}' },
          ],
        },
      ],
    },
  ],
};

const runtime: DashboardSpec = {
  uid: 'conduit-runtime',
  title: 'Conduit / .NET runtime',
  description: '.NET runtime, process, Kestrel and SignalR metrics of the Conduit API and Admin processes.',
  tags: ['conduit', 'dotnet'],
  variables: appVariables(APP_JOBS),
  rows: [
    {
      title: 'CPU and memory',
      panels: [
        {
          title: 'CPU',
          unit: 'short',
          min: 0,
          description: 'CPU cores used per pod (process CPU time per second).',
          targets: [{ expr: rate('process_cpu_time_seconds_total', '', 'instance'), legend: '{{instance}}' }],
        },
        {
          title: 'Memory',
          unit: 'bytes',
          min: 0,
          description: 'Working set per pod as the runtime and the process instrumentation see it; compare with the memory limit.',
          targets: [
            { expr: `sum by (instance) (dotnet_process_memory_working_set_bytes{${SEL}})`, legend: 'working set {{instance}}' },
            { expr: `sum by (instance) (process_memory_usage_bytes{${SEL}})`, legend: 'process {{instance}}' },
          ],
        },
        {
          title: 'GC collections by generation',
          unit: 'ops',
          min: 0,
          description: 'Garbage collections per second by heap generation; frequent gen2 collections mean memory pressure.',
          targets: [{ expr: rate('dotnet_gc_collections_total', '', 'gc_heap_generation'), legend: '{{gc_heap_generation}}' }],
        },
        {
          title: 'GC pause share',
          unit: 'percentunit',
          min: 0,
          description: 'Share of wall-clock time each process was paused for garbage collection (alert above 10 %).',
          targets: [{ expr: rate('dotnet_gc_pause_time_seconds_total', '', 'instance'), legend: '{{instance}}' }],
        },
      ],
    },
    {
      title: 'Threads and contention',
      panels: [
        {
          title: 'Thread pool',
          unit: 'short',
          min: 0,
          description: 'Work items waiting for a thread-pool thread, and the number of pool threads. A growing queue with slowly growing threads is starvation.',
          targets: [
            { expr: `sum by (instance) (dotnet_thread_pool_queue_length{${SEL}})`, legend: 'queued {{instance}}' },
            { expr: `sum by (instance) (dotnet_thread_pool_thread_count{${SEL}})`, legend: 'threads {{instance}}' },
          ],
        },
        {
          title: 'Process threads',
          unit: 'short',
          min: 0,
          description: 'Operating-system threads of each process.',
          targets: [{ expr: `sum by (instance) (process_thread_count{${SEL}})`, legend: '{{instance}}' }],
        },
        {
          title: 'Exceptions by type',
          unit: 'ops',
          min: 0,
          description: 'Exceptions thrown per second by exception type (handled ones included).',
          targets: [{ expr: rate('dotnet_exceptions_total', '', 'error_type'), legend: '{{error_type}}' }],
        },
        {
          title: 'Lock contention',
          unit: 'ops',
          min: 0,
          description: 'Times per second a thread had to wait for a monitor lock.',
          targets: [{ expr: rate('dotnet_monitor_lock_contentions_total', '', 'instance'), legend: '{{instance}}' }],
        },
      ],
    },
    {
      title: 'Connections',
      panels: [
        {
          title: 'Kestrel connections',
          unit: 'short',
          min: 0,
          description: 'Open, queued and upgraded (WebSocket) connections of the Kestrel server.',
          targets: [
            { expr: `sum by (instance) (kestrel_active_connections{${SEL}})`, legend: 'active {{instance}}' },
            { expr: `sum by (instance) (kestrel_queued_connections{${SEL}})`, legend: 'queued {{instance}}' },
            { expr: `sum by (instance) (kestrel_upgraded_connections{${SEL}})`, legend: 'upgraded {{instance}}' },
          ],
        },
        {
          title: 'Kestrel rejected connections',
          unit: 'cps',
          min: 0,
          description: 'Connections rejected per second because the connection limit was reached.',
          targets: [{ expr: rate('kestrel_rejected_connections_total', '', 'instance'), legend: '{{instance}}' }],
        },
        {
          title: 'SignalR connections',
          unit: 'short',
          min: 0,
          description: 'Open SignalR connections (hubs under /hubs) by transport.',
          targets: [{ expr: `sum by (signalr_transport) (signalr_server_active_connections{${SEL}})`, legend: '{{signalr_transport}}' }],
        },
        {
          title: 'SignalR connection duration p95',
          unit: 's',
          min: 0,
          description: '95th percentile duration of closed SignalR connections by status.',
          targets: [{ expr: quantile(0.95, 'signalr_server_connection_duration_seconds', '', 'signalr_connection_status'), legend: '{{signalr_connection_status}}' }],
        },
      ],
    },
  ],
};

const DATA_SEL = SEL;
const data: DashboardSpec = {
  uid: 'conduit-data',
  title: 'Conduit / Data & jobs',
  description: 'PostgreSQL (CloudNativePG), Redis (redis_exporter), RabbitMQ (rabbitmq_prometheus) and backups (kube-state-metrics, CloudNativePG) of the Conduit release.',
  tags: ['conduit', 'data'],
  variables: [
    { name: 'namespace', label: 'Namespace', query: 'up', promLabel: 'namespace', description: 'Namespace of the Conduit release (its data services run there too).' },
    { name: 'job', label: 'Job', query: 'up', promLabel: 'job', description: "Scrape job: conduit-postgresql, conduit-redis and conduit-rabbitmq with the chart's monitors, and kube-state-metrics." },
    { name: 'instance', label: 'Instance', query: 'up{job=~"$job"}', promLabel: 'instance', description: 'Scraped endpoint.' },
  ],
  rows: [
    {
      title: 'PostgreSQL',
      panels: [
        {
          type: 'stat',
          title: 'PostgreSQL instances up',
          unit: 'short',
          baseColor: 'red',
          thresholds: [[1, 'green']],
          description: 'CloudNativePG instances whose PostgreSQL answers.',
          targets: [{ expr: `sum(cnpg_collector_up{${DATA_SEL}})` }],
        },
        {
          type: 'stat',
          title: 'Connections used',
          unit: 'percentunit',
          thresholds: [
            [0.7, 'orange'],
            [0.8, 'red'],
          ],
          description: 'Highest share of max_connections in use on any instance.',
          targets: [{ expr: `max(sum by (pod) (cnpg_backends_total{${DATA_SEL}}) / on (pod) max by (pod) (cnpg_pg_settings_setting{${DATA_SEL}, name="max_connections"}))` }],
        },
        {
          type: 'stat',
          title: 'Longest transaction',
          unit: 's',
          thresholds: [
            [60, 'orange'],
            [300, 'red'],
          ],
          description: 'Age of the oldest open transaction on any instance.',
          targets: [{ expr: `max(cnpg_backends_max_tx_duration_seconds{${DATA_SEL}})` }],
        },
        {
          type: 'stat',
          title: 'Replication lag',
          unit: 's',
          thresholds: [
            [10, 'orange'],
            [60, 'red'],
          ],
          description: 'Largest replica lag behind the primary.',
          targets: [{ expr: `max(cnpg_pg_replication_lag{${DATA_SEL}})` }],
        },
        {
          title: 'Connections by application',
          unit: 'short',
          min: 0,
          stack: true,
          description: 'PostgreSQL backends by application name and state (API and Admin pools, CloudNativePG itself).',
          targets: [{ expr: `sum by (application_name, state) (cnpg_backends_total{${DATA_SEL}, datname!=""})`, legend: '{{application_name}} {{state}}' }],
        },
        {
          title: 'Transactions',
          unit: 'ops',
          min: 0,
          description: 'Commits and rollbacks per second per database.',
          targets: [
            { expr: rate('cnpg_pg_stat_database_xact_commit', '', 'datname'), legend: 'commit {{datname}}' },
            { expr: rate('cnpg_pg_stat_database_xact_rollback', '', 'datname'), legend: 'rollback {{datname}}' },
          ],
        },
        {
          title: 'Database size',
          unit: 'bytes',
          min: 0,
          description: 'Disk space used per database.',
          targets: [{ expr: `max by (datname) (cnpg_pg_database_size_bytes{${DATA_SEL}})`, legend: '{{datname}}' }],
        },
      ],
    },
    {
      title: 'Redis',
      panels: [
        {
          type: 'stat',
          title: 'Redis up',
          unit: 'short',
          baseColor: 'red',
          thresholds: [[1, 'green']],
          description: 'Redis servers the exporter reaches.',
          targets: [{ expr: `sum(redis_up{${DATA_SEL}})` }],
        },
        {
          title: 'Redis memory',
          unit: 'bytes',
          min: 0,
          description: 'Memory used and maxmemory (0 = unlimited).',
          targets: [
            { expr: `sum by (instance) (redis_memory_used_bytes{${DATA_SEL}})`, legend: 'used {{instance}}' },
            { expr: `sum by (instance) (redis_memory_max_bytes{${DATA_SEL}})`, legend: 'max {{instance}}' },
          ],
        },
        {
          title: 'Redis clients',
          unit: 'short',
          min: 0,
          description: 'Connected clients (API and Admin pods, health checks open a connection per call).',
          targets: [{ expr: `sum by (instance) (redis_connected_clients{${DATA_SEL}})`, legend: '{{instance}}' }],
        },
        {
          title: 'Redis commands',
          unit: 'ops',
          min: 0,
          description: 'Commands processed per second.',
          targets: [{ expr: rate('redis_commands_processed_total', '', 'instance'), legend: '{{instance}}' }],
        },
        {
          title: 'Redis cache hit ratio',
          unit: 'percentunit',
          min: 0,
          max: 1,
          description: 'Share of key lookups that found the key.',
          targets: [{ expr: `${rate('redis_keyspace_hits_total')} / (${rate('redis_keyspace_hits_total')} + ${rate('redis_keyspace_misses_total')})`, legend: 'hit ratio' }],
        },
        {
          title: 'Redis evictions and rejections',
          unit: 'ops',
          min: 0,
          description: 'Keys evicted because of maxmemory, and connections rejected because of maxclients, per second.',
          targets: [
            { expr: rate('redis_evicted_keys_total', '', 'instance'), legend: 'evicted {{instance}}' },
            { expr: rate('redis_rejected_connections_total', '', 'instance'), legend: 'rejected {{instance}}' },
          ],
        },
      ],
    },
    {
      title: 'RabbitMQ',
      panels: [
        {
          title: 'Queued messages',
          unit: 'short',
          min: 0,
          description: 'Messages ready for delivery and delivered but unacknowledged.',
          targets: [
            { expr: `sum(rabbitmq_queue_messages_ready{${DATA_SEL}})`, legend: 'ready' },
            { expr: `sum(rabbitmq_queue_messages_unacked{${DATA_SEL}})`, legend: 'unacked' },
          ],
        },
        {
          title: 'Message rates',
          unit: 'ops',
          min: 0,
          description: 'Messages received from publishers and delivered to consumers per second.',
          targets: [
            { expr: rate('rabbitmq_global_messages_received_total'), legend: 'received' },
            { expr: rate('rabbitmq_global_messages_delivered_total'), legend: 'delivered' },
          ],
        },
        {
          title: 'Connections and consumers',
          unit: 'short',
          min: 0,
          description: 'Client connections (API and Admin pods) and consumers.',
          targets: [
            { expr: `sum(rabbitmq_connections{${DATA_SEL}})`, legend: 'connections' },
            { expr: `sum(rabbitmq_consumers{${DATA_SEL}})`, legend: 'consumers' },
          ],
        },
        {
          title: 'Resource alarms',
          unit: 'short',
          min: 0,
          description: 'Nodes with a memory, disk or file-descriptor alarm (publishers are blocked while one is active).',
          targets: [
            { expr: `sum(rabbitmq_alarms_memory_used_watermark{${DATA_SEL}})`, legend: 'memory' },
            { expr: `sum(rabbitmq_alarms_free_disk_space_watermark{${DATA_SEL}})`, legend: 'disk' },
            { expr: `sum(rabbitmq_alarms_file_descriptor_limit{${DATA_SEL}})`, legend: 'file descriptors' },
          ],
        },
      ],
    },
    {
      title: 'Backups',
      panels: [
        {
          type: 'stat',
          title: 'Last backup job success',
          unit: 's',
          thresholds: [[93600, 'red']],
          description: 'Time since the backup CronJob last succeeded (alert after 26 h).',
          targets: [{ expr: `time() - max(kube_cronjob_status_last_successful_time{${DATA_SEL}, cronjob=~".*conduit.*backup.*"})` }],
        },
        {
          type: 'stat',
          title: 'Failed backup jobs',
          unit: 'short',
          thresholds: [[1, 'red']],
          description: 'Backup Jobs with failed pods that still exist (delete them once handled).',
          targets: [{ expr: `count(kube_job_status_failed{${DATA_SEL}, job_name=~".*conduit.*backup.*"} > 0) or vector(0)` }],
        },
        {
          type: 'stat',
          title: 'Last CloudNativePG backup',
          unit: 's',
          thresholds: [[93600, 'red']],
          description: 'Age of the newest CloudNativePG base backup.',
          targets: [{ expr: `time() - max(cnpg_collector_last_available_backup_timestamp{${DATA_SEL}} > 0)` }],
        },
        {
          type: 'stat',
          title: 'Last backup job scheduled',
          unit: 's',
          thresholds: [[93600, 'red']],
          description: 'Time since the backup CronJob was last scheduled; a large value with an old success means the CronJob is suspended or not scheduling.',
          targets: [{ expr: `time() - max(kube_cronjob_status_last_schedule_time{${DATA_SEL}, cronjob=~".*conduit.*backup.*"})` }],
        },
        {
          type: 'stat',
          title: 'CloudNativePG backup failed after last success',
          unit: 'short',
          thresholds: [[1, 'red']],
          description: '1 when the last CloudNativePG backup failed after the last successful one.',
          targets: [{ expr: `max(cnpg_collector_last_failed_backup_timestamp{${DATA_SEL}}) > bool max(cnpg_collector_last_available_backup_timestamp{${DATA_SEL}})` }],
        },
      ],
    },
    {
      title: 'Workloads (kube-state-metrics)',
      panels: [
        {
          title: 'Container restarts',
          unit: 'short',
          min: 0,
          description: 'Container restarts of the Conduit pods over the last hour (crash loops, OOM kills, failed liveness probes).',
          targets: [{ expr: `sum by (pod, container) (increase(kube_pod_container_status_restarts_total{${DATA_SEL}, pod=~".*conduit.*"}[1h]))`, legend: '{{pod}} {{container}}' }],
        },
        {
          title: 'Autoscaler replicas',
          unit: 'short',
          min: 0,
          description: 'Current and desired replicas of each Conduit autoscaler, with its bounds; desired at the maximum means the load exceeds what the maximum can serve.',
          targets: [
            {
              expr: `max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_current_replicas{${DATA_SEL}, horizontalpodautoscaler=~".*conduit.*"})`,
              legend: 'current {{horizontalpodautoscaler}}',
            },
            {
              expr: `max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_desired_replicas{${DATA_SEL}, horizontalpodautoscaler=~".*conduit.*"})`,
              legend: 'desired {{horizontalpodautoscaler}}',
            },
            {
              expr: `max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_min_replicas{${DATA_SEL}, horizontalpodautoscaler=~".*conduit.*"})`,
              legend: 'min {{horizontalpodautoscaler}}',
            },
            {
              expr: `max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_max_replicas{${DATA_SEL}, horizontalpodautoscaler=~".*conduit.*"})`,
              legend: 'max {{horizontalpodautoscaler}}',
            },
          ],
        },
      ],
    },
  ],
};

export const DASHBOARDS: readonly DashboardSpec[] = [overview, upstream, runtime, data];

// ---------------------------------------------------------------------------------------------
// Versions

export interface VersionEntry {
  version: number;
  sha256: string;
}
export type VersionRegistry = Record<string, { file: string; history: VersionEntry[] }>;

/** JSON with object keys sorted, so digests do not depend on key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Digest of a dashboard's content: everything but `version` (and Grafana's `id`/`iteration`). */
export function contentDigest(dashboard: Record<string, unknown>): string {
  const { version: _v, id: _id, iteration: _it, ...content } = dashboard;
  return crypto.createHash('sha256').update(canonicalJson(content)).digest('hex');
}

export function loadVersions(file = VERSIONS_FILE): VersionRegistry {
  if (!fs.existsSync(file)) return {};
  const doc = YAML.parse(fs.readFileSync(file, 'utf8')) ?? {};
  for (const [uid, e] of Object.entries(doc as VersionRegistry)) {
    if (!e?.file || !Array.isArray(e.history) || e.history.some((h) => !Number.isInteger(h.version) || !/^[0-9a-f]{64}$/.test(h.sha256))) {
      throw new UserError(`${file}: entry ${uid} needs file and a history of {version, sha256}`);
    }
  }
  return doc as VersionRegistry;
}

export function renderVersions(reg: VersionRegistry): string {
  return (
    '# Version history of every dashboard: the sha256 of its content (all but "version") per version.\n' +
    '# Written by `npx zx scripts/monitoring.ts build`; a content change adds a version, which needs an\n' +
    '# entry "## <uid> v<version>" in CHANGELOG.md.\n' +
    YAML.stringify(reg)
  );
}

export function dashboardJson(dashboard: Record<string, unknown>): string {
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}

export interface RenderedDashboard {
  uid: string;
  file: string;
  version: number;
  json: string;
  /** The content differs from the newest recorded version. */
  changed: boolean;
}

/**
 * Render every dashboard. With `bump`, a dashboard whose content differs from its newest recorded
 * version gets the next version number (the registry is updated in place); without, it keeps the
 * recorded version and is reported as `changed`.
 */
export function renderDashboards(registry: VersionRegistry, bump: boolean, specs: readonly DashboardSpec[] = DASHBOARDS): RenderedDashboard[] {
  return specs.map((spec) => {
    const content = buildDashboard(spec);
    const digest = contentDigest(content);
    const entry = (registry[spec.uid] ??= { file: `${spec.uid}.json`, history: [] });
    const latest = entry.history[entry.history.length - 1];
    let changed = latest?.sha256 !== digest;
    let version = latest?.version ?? 0;
    if (changed && bump) {
      version += 1;
      entry.history.push({ version, sha256: digest });
      changed = false;
    }
    return { uid: spec.uid, file: entry.file, version, changed, json: dashboardJson({ ...content, version }) };
  });
}

/** Headings "## <uid> v<version>" of the dashboards changelog. */
export function changelogVersions(text: string): Set<string> {
  return new Set([...text.matchAll(/^##\s+([a-z0-9-]+)\s+v(\d+)\b/gm)].map((m) => `${m[1]} v${m[2]}`));
}
