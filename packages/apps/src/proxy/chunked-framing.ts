import { MAX_HEAD } from './http-head.ts';

/**
 * Follows chunked framing strictly, byte by byte outside the data: hex size (no sign, no
 * space, no 0x), chunk extensions of visible characters, CRLF everywhere, trailer fields
 * without obs-fold. The bytes are passed on as they came once they are known to be well-formed.
 */
export class ChunkedFraming {
  #state = 0;
  #size = 0;
  #digits = 0;
  #left = 0;
  #lineBytes = 0;
  done = false;
  error = false;

  /** How far into `buf` (from `from`) the framing goes; stops at the message's end. */
  feed(buf: Buffer, from: number): number {
    let i = from;
    const n = buf.length;
    while (i < n && !this.done) {
      if (this.#state === 3) {
        const take = Math.min(this.#left, n - i);
        i += take;
        this.#left -= take;
        if (this.#left === 0) this.#state = 4;
        continue;
      }
      const c = buf[i++]!;
      switch (this.#state) {
        case 0: { // size
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0 && this.#digits < 12) {
            this.#size = this.#size * 16 + v;
            this.#digits++;
          } else if (this.#digits > 0 && c === 59) { // ;
            this.#state = 1;
            this.#lineBytes = 0;
          } else if (this.#digits > 0 && c === 13) {
            this.#state = 2;
          } else {
            return this.#fail(i);
          }
          break;
        }
        case 1: // chunk extension
          if (c === 13) this.#state = 2;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.#lineBytes > 4096) return this.#fail(i);
          break;
        case 2: // LF after the size line
          if (c !== 10) return this.#fail(i);
          if (this.#size === 0) {
            this.#state = 6;
            this.#lineBytes = 0;
          } else {
            this.#state = 3;
            this.#left = this.#size;
          }
          break;
        case 4: // CR after data
          if (c !== 13) return this.#fail(i);
          this.#state = 5;
          break;
        case 5: // LF after data
          if (c !== 10) return this.#fail(i);
          this.#state = 0;
          this.#size = 0;
          this.#digits = 0;
          break;
        case 6: // start of a trailer line, or the final CRLF
          if (c === 13) this.#state = 9;
          else if (c === 32 || c === 9 || c < 32 || c === 127 || c === 58) return this.#fail(i);
          else this.#state = 7;
          break;
        case 7: // trailer line
          if (c === 13) this.#state = 8;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.#lineBytes > MAX_HEAD) return this.#fail(i);
          break;
        case 8:
          if (c !== 10) return this.#fail(i);
          this.#state = 6;
          break;
        case 9:
          if (c !== 10) return this.#fail(i);
          this.done = true;
          break;
      }
    }
    return i;
  }

  #fail(i: number): number {
    this.error = true;
    return i;
  }
}
