import { useRef, useState, type KeyboardEvent, type MouseEvent, type RefObject } from 'react';
import type { Series } from '../../api.ts';
import type { GridHandle } from '../../components/VirtualGrid.tsx';
import { navigate } from '../../router.ts';

/** Opens a series in the viewer page (double click, Enter, a card's Open button). */
export function openSeries(s: Series): void {
  navigate(`/viewer/${s.study_instance_uid}/${s.series_instance_uid}`);
}

interface Options {
  grid: RefObject<GridHandle | null>;
  /** How many series the gallery holds (loaded or not). */
  count: number;
  itemAt: (i: number) => Series | undefined;
  loadedUids: () => Set<string>;
  selection: Set<string>;
  setSelection: (s: Set<string>) => void;
}

/**
 * The gallery's focus and selection as a file manager has them: click, Ctrl/⌘-click,
 * Shift-click ranges from the last anchor; arrows, Page Up/Down, Home/End, Space, Enter,
 * Escape and Ctrl+A on the keyboard.
 */
export function useGallerySelection({ grid, count, itemAt, loadedUids, selection, setSelection }: Options) {
  const [focus, setFocus] = useState(0);
  const anchor = useRef<number | undefined>(undefined);

  const selectRange = (from: number, to: number, base: Set<string>) => {
    const next = new Set(base);
    for (let i = Math.min(from, to); i <= Math.max(from, to); i++) {
      const s = itemAt(i);
      if (s) next.add(s.series_instance_uid);
    }
    return next;
  };

  const onItemClick = (i: number, e: MouseEvent) => {
    const s = itemAt(i);
    if (!s) return;
    setFocus(i);
    const uid = s.series_instance_uid;
    if (e.shiftKey && anchor.current !== undefined) {
      setSelection(selectRange(anchor.current, i, e.ctrlKey || e.metaKey ? selection : new Set()));
      return;
    }
    if (e.ctrlKey || e.metaKey) {
      const next = new Set(selection);
      if (next.has(uid)) next.delete(uid);
      else next.add(uid);
      setSelection(next);
    } else {
      setSelection(selection.size === 1 && selection.has(uid) ? new Set() : new Set([uid]));
    }
    anchor.current = i;
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const cols = grid.current?.columns() ?? 1;
    const moves: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols, PageUp: -cols * 4, PageDown: cols * 4 };
    let next: number | undefined;
    if (e.key in moves) next = focus + moves[e.key]!;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = count - 1;
    if (next !== undefined) {
      e.preventDefault();
      next = Math.max(0, Math.min(count - 1, next));
      if (e.shiftKey) {
        anchor.current ??= focus;
        setSelection(selectRange(anchor.current, next, new Set()));
      }
      setFocus(next);
      grid.current?.reveal(next);
      return;
    }
    const s = itemAt(focus);
    if (e.key === ' ' && s) {
      e.preventDefault();
      const n = new Set(selection);
      if (n.has(s.series_instance_uid)) n.delete(s.series_instance_uid);
      else n.add(s.series_instance_uid);
      setSelection(n);
      anchor.current = focus;
    } else if (e.key === 'Enter' && s) {
      openSeries(s);
    } else if (e.key === 'Escape') {
      setSelection(new Set());
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'a') {
      e.preventDefault();
      setSelection(loadedUids());
    }
  };

  return { focus, onItemClick, onKeyDown };
}
