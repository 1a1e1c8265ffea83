// A live line chart (uPlot). `data` is uPlot's column format: [times, series1, series2, …].
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

const COLORS = ['#2f5bea', '#e8590c', '#c92a2a', '#2b8a3e', '#7048e8', '#0b7285', '#d6336c', '#5c940d'];

export function Chart({ title, series, data, unit, height = 180 }) {
  const box = useRef(null);
  const plot = useRef(null);
  const key = series.join('|');
  useEffect(() => {
    const width = box.current.clientWidth || 300;
    plot.current = new uPlot(
      {
        width,
        height,
        legend: { show: true, live: false },
        cursor: { show: true, drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [{}, { values: (u, vals) => vals.map((v) => `${+v.toFixed(2)}${unit || ''}`), size: 60 }],
        series: [{}, ...series.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: false } }))],
      },
      data,
      box.current,
    );
    // The observer can fire once more after the chart left the page (box gone): skip that.
    const resize = new ResizeObserver(() => box.current && plot.current?.setSize({ width: box.current.clientWidth, height }));
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      plot.current.destroy();
    };
  }, [key]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${series.map((s, i) => `${s} ${last(data[i + 1])}${unit || ''}`).join(', ')}`} />
    </figure>
  );
}

function last(col) {
  const v = col && col[col.length - 1];
  return v === null || v === undefined ? 'no data' : +v.toFixed(2);
}
