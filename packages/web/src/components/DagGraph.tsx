import type { KeyboardEvent } from 'react';

export interface DagNode {
  id: string;
  label: string;
  state: string;
  upstream: string[];
}

export const STATE_COLORS: Record<string, { fill: string; text: string }> = {
  success: { fill: '#d1f0da', text: '#14532d' },
  running: { fill: '#cfe0ff', text: '#1e3a8a' },
  queued: { fill: '#fff1d6', text: '#7c4a03' },
  scheduled: { fill: '#fff1d6', text: '#7c4a03' },
  up_for_retry: { fill: '#ffe3b3', text: '#7c4a03' },
  pending: { fill: '#f1f3f6', text: '#374151' },
  none: { fill: '#f1f3f6', text: '#374151' },
  failed: { fill: '#fbd5d5', text: '#7f1d1d' },
  upstream_failed: { fill: '#fde6e6', text: '#7f1d1d' },
  skipped: { fill: '#e5e7eb', text: '#4b5563' },
  canceled: { fill: '#e5e7eb', text: '#4b5563' },
};

const W = 180;
const H = 46;
const GX = 60;
const GY = 18;

/** Layers by longest path from a root; nodes in a layer keep their order in the spec. */
export function layout(nodes: DagNode[]): Map<string, { x: number; y: number; layer: number }> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map<string, number>();
  const depth = (id: string, seen: Set<string>): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return 0; // a cycle cannot be in a valid spec; do not loop
    seen.add(id);
    const ups = byId.get(id)?.upstream.filter((u) => byId.has(u)) ?? [];
    const d = ups.length ? Math.max(...ups.map((u) => depth(u, seen) + 1)) : 0;
    layer.set(id, d);
    return d;
  };
  for (const n of nodes) depth(n.id, new Set());
  const rows = new Map<number, string[]>();
  for (const n of nodes) {
    const l = layer.get(n.id)!;
    rows.set(l, [...(rows.get(l) ?? []), n.id]);
  }
  // Order each layer by the mean position of its upstreams (fewer crossings), stable otherwise.
  const pos = new Map<string, { x: number; y: number; layer: number }>();
  const maxRows = Math.max(1, ...[...rows.values()].map((r) => r.length));
  for (const l of [...rows.keys()].sort((a, b) => a - b)) {
    const ids = rows.get(l)!;
    const key = (id: string) => {
      const ups = byId.get(id)!.upstream.map((u) => pos.get(u)?.y).filter((y): y is number => y !== undefined);
      return ups.length ? ups.reduce((a, b) => a + b, 0) / ups.length : 0;
    };
    const sorted = l === 0 ? ids : [...ids].sort((a, b) => key(a) - key(b));
    const offset = ((maxRows - sorted.length) * (H + GY)) / 2;
    sorted.forEach((id, i) => pos.set(id, { x: 10 + l * (W + GX), y: 10 + offset + i * (H + GY), layer: l }));
  }
  return pos;
}

export function DagGraph({ nodes, selected, onSelect }: { nodes: DagNode[]; selected?: string; onSelect: (id: string) => void }) {
  const pos = layout(nodes);
  const width = Math.max(...[...pos.values()].map((p) => p.x + W), 200) + 10;
  const height = Math.max(...[...pos.values()].map((p) => p.y + H), 60) + 10;
  const onKey = (e: KeyboardEvent, id: string) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      onSelect(id);
    }
  };
  return (
    <div className="dag">
      <svg width={width} height={height} role="group" aria-label="Tasks of the run">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#9ca3af" />
          </marker>
        </defs>
        {nodes.flatMap((n) =>
          n.upstream
            .filter((u) => pos.has(u))
            .map((u) => {
              const a = pos.get(u)!;
              const b = pos.get(n.id)!;
              const x1 = a.x + W;
              const y1 = a.y + H / 2;
              const x2 = b.x - 2;
              const y2 = b.y + H / 2;
              const mx = (x1 + x2) / 2;
              return <path key={`${u}->${n.id}`} d={`M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`} fill="none" stroke="#9ca3af" strokeWidth={1.5} markerEnd="url(#arrow)" />;
            }),
        )}
        {nodes.map((n) => {
          const p = pos.get(n.id)!;
          const c = STATE_COLORS[n.state] ?? STATE_COLORS.none!;
          return (
            <g
              key={n.id}
              className={`node${n.id === selected ? ' sel' : ''}`}
              transform={`translate(${p.x},${p.y})`}
              tabIndex={0}
              role="button"
              aria-label={`${n.label}: ${n.state}`}
              aria-pressed={n.id === selected}
              data-task={n.id}
              data-state={n.state}
              onClick={() => onSelect(n.id)}
              onKeyDown={(e) => onKey(e, n.id)}
            >
              <rect width={W} height={H} rx={8} fill={c.fill} />
              {n.state === 'running' && <rect width={W} height={3} rx={1} fill="#2563eb" />}
              <text x={10} y={19} fill={c.text} fontWeight={600}>
                {n.label.length > 24 ? `${n.label.slice(0, 23)}…` : n.label}
              </text>
              <text x={10} y={36} fill={c.text}>
                {n.state.replace(/_/g, ' ')}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
