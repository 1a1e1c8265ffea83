// How often a feature is evaluated in an environment, per day (docs/flag-usage.md): what the
// edges served and what SDKs reported, as a uPlot chart, with the last evaluation's time.
import { useState } from 'preact/hooks';
import { get, query } from '../lib/api.js';
import { ago, dateTime } from '../lib/format.js';
import { Chart } from './Chart.jsx';
import { Alert, Loading, SelectField, useLoad } from './ui.jsx';

const DAY_MS = 86_400_000;
const PERIODS = [
  { value: '7', label: 'Last 7 days' },
  { value: '30', label: 'Last 30 days' },
  { value: '90', label: 'Last 90 days' },
];

/** The API leaves out days without evaluations; the chart shows them as 0. */
export function dailySeries(rows, period, now = Date.now()) {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const xs = [];
  const served = [];
  const reported = [];
  for (let i = period - 1; i >= 0; i--) {
    const t = today - i * DAY_MS;
    const r = byDay.get(new Date(t).toISOString().slice(0, 10));
    xs.push(t / 1000);
    served.push(r ? r.served : 0);
    reported.push(r ? r.reported : 0);
  }
  return [xs, served, reported];
}

export function UsageCard({ feature, env, project, lastEvaluatedAt }) {
  const [period, setPeriod] = useState('30');
  const data = useLoad(
    () => get(`/projects/${project}/features/${feature.id}/evaluation-data/${query({ environment_id: env.id, period })}`),
    [feature.id, env.id, period],
  );
  const total = (data.data || []).reduce((a, r) => a + r.count, 0);
  return (
    <section class="card" aria-labelledby="usage-title">
      <h2 id="usage-title">Usage in {env.name}</h2>
      <p class="hint">
        How often SDKs asked for this flag: answers served by Flagstone, plus counts SDKs reported with analytics on. Counted every few
        seconds; a flag nobody asks for any more can be removed from the code.
      </p>
      <p>
        Last evaluated:{' '}
        <strong title={lastEvaluatedAt ? dateTime(lastEvaluatedAt) : undefined}>{lastEvaluatedAt ? ago(lastEvaluatedAt) : 'never'}</strong>
        {data.data && (
          <span class="muted">
            {' '}
            · {total.toLocaleString()} evaluations in the {PERIODS.find((p) => p.value === period).label.toLowerCase()}
          </span>
        )}
      </p>
      <div class="toolbar">
        <SelectField label="Period" value={period} onChange={setPeriod} options={PERIODS} />
      </div>
      <Alert error={data.error} />
      {data.data ? (
        <Chart title={`Evaluations per day of ${feature.name}`} series={['Served by Flagstone', 'Reported by SDKs']} data={dailySeries(data.data, Number(period))} />
      ) : (
        !data.error && <Loading label="Loading usage…" />
      )}
    </section>
  );
}
