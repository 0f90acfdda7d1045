import { forwardRef, useCallback, useEffect, useImperativeHandle, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode } from 'react';

export interface GridHandle {
  /** Scrolls so that item `index` is in view. */
  reveal: (index: number) => void;
  columns: () => number;
}

interface Props {
  count: number;
  minItemWidth: number;
  itemHeight: number;
  gap?: number;
  /** Rows rendered above and below the visible ones. */
  overscan?: number;
  renderItem: (index: number, style: React.CSSProperties) => ReactNode;
  /** The visible items changed (first, last inclusive), for lazy page loads. */
  onRange?: (first: number, last: number) => void;
  onKeyDown?: (e: KeyboardEvent<HTMLDivElement>) => void;
  label: string;
}

/**
 * A windowed grid: only the rows in view (and a few around) are in the DOM, so 100,000
 * items scroll like 100. Columns follow the width; every item has the same height.
 */
export const VirtualGrid = forwardRef<GridHandle, Props>(function VirtualGrid(props, ref) {
  const { count, minItemWidth, itemHeight, gap = 12, overscan = 3 } = props;
  const el = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  const [height, setHeight] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);

  useLayoutEffect(() => {
    const node = el.current!;
    // Measured before the first paint, so the first rows are drawn at once.
    setWidth(node.clientWidth);
    setHeight(node.clientHeight);
    const ro = new ResizeObserver(() => {
      setWidth(node.clientWidth);
      setHeight(node.clientHeight);
    });
    ro.observe(node);
    return () => ro.disconnect();
  }, []);

  const inner = Math.max(0, width - gap);
  const columns = Math.max(1, Math.floor(inner / (minItemWidth + gap)));
  const itemWidth = columns > 0 ? Math.floor(inner / columns) - gap : minItemWidth;
  const rowHeight = itemHeight + gap;
  const rows = Math.ceil(count / columns);
  const firstRow = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const lastRow = Math.min(rows - 1, Math.ceil((scrollTop + height) / rowHeight) + overscan);

  const onRange = props.onRange;
  useEffect(() => {
    if (width === 0 || count === 0) return;
    const visFirst = Math.floor(scrollTop / rowHeight) * columns;
    const visLast = Math.min(count - 1, Math.ceil((scrollTop + height) / rowHeight) * columns - 1);
    onRange?.(Math.max(0, visFirst - columns * overscan), Math.min(count - 1, visLast + columns * overscan));
  }, [scrollTop, height, width, columns, rowHeight, count, overscan, onRange]);

  const reveal = useCallback(
    (index: number) => {
      const node = el.current;
      if (!node) return;
      const top = Math.floor(index / columns) * rowHeight;
      if (top < node.scrollTop) node.scrollTop = top;
      else if (top + rowHeight > node.scrollTop + node.clientHeight) node.scrollTop = top + rowHeight - node.clientHeight + gap;
    },
    [columns, rowHeight, gap],
  );
  useImperativeHandle(ref, () => ({ reveal, columns: () => columns }), [reveal, columns]);

  const items: ReactNode[] = [];
  if (width > 0) {
    for (let r = firstRow; r <= lastRow; r++) {
      for (let c = 0; c < columns; c++) {
        const i = r * columns + c;
        if (i >= count) break;
        items.push(props.renderItem(i, { top: gap + r * rowHeight, left: gap + c * (itemWidth + gap), width: itemWidth, height: itemHeight }));
      }
    }
  }
  return (
    <div
      ref={el}
      className="vgrid"
      tabIndex={0}
      role="grid"
      aria-label={props.label}
      aria-rowcount={rows}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      onKeyDown={props.onKeyDown}
    >
      <div className="vgrid-inner" style={{ height: rows * rowHeight + gap }}>
        {items}
      </div>
    </div>
  );
});
