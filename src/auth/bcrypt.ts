/**
 * bcrypt (`$2a$`, `$2b$`, `$2y$`) verification without a dependency, so that
 * `htpasswd -B` files and the hashes of Prometheus' own `web.yml` work as they
 * are. Node's crypto has no bcrypt (nor Blowfish's key schedule), hence this
 * small implementation of OpenBSD's algorithm. The Blowfish initial state is
 * the fractional part of pi in hexadecimal; rather than carry 4 KiB of
 * constants, it is computed once, on first use, with BigInt (Machin's formula).
 *
 * Verification is CPU-bound (2^cost key schedules); it yields to the event loop
 * every few rounds so that a verification never stalls the server's streams.
 *
 * @internal
 */

/** The Blowfish P-array (18 words) and S-boxes (4 × 256 words) as one array of 1042 words. */
let initialState: Int32Array | undefined;

/** The first `count` 32-bit words of pi's fractional part. */
function piWords(count: number): Int32Array {
  const bits = BigInt(count * 32 + 64);
  const one = 1n << bits;
  const arctanInverse = (x: bigint): bigint => {
    const x2 = x * x;
    let power = one / x;
    let sum = 0n;
    for (let k = 1n, positive = true; power !== 0n; k += 2n, positive = !positive) {
      const term = power / k;
      sum = positive ? sum + term : sum - term;
      power /= x2;
    }
    return sum;
  };
  const pi = 16n * arctanInverse(5n) - 4n * arctanInverse(239n);
  const fraction = pi & (one - 1n);
  const words = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    words[i] = Number((fraction >> (bits - 32n * BigInt(i + 1))) & 0xffffffffn) | 0;
  }
  return words;
}

const P = 18;

function encipher(st: Int32Array, lr: Int32Array, off: number): void {
  let l = lr[off] as number;
  let r = lr[off + 1] as number;
  l ^= st[0] as number;
  for (let i = 1; i <= 16; i += 2) {
    r ^= ((((st[P + (l >>> 24)] as number) + (st[P + 256 + ((l >>> 16) & 0xff)] as number)) ^ (st[P + 512 + ((l >>> 8) & 0xff)] as number)) + (st[P + 768 + (l & 0xff)] as number)) ^ (st[i] as number);
    l ^= ((((st[P + (r >>> 24)] as number) + (st[P + 256 + ((r >>> 16) & 0xff)] as number)) ^ (st[P + 512 + ((r >>> 8) & 0xff)] as number)) + (st[P + 768 + (r & 0xff)] as number)) ^ (st[i + 1] as number);
  }
  lr[off] = r ^ (st[17] as number);
  lr[off + 1] = l;
}

/** Reads the next 32-bit word of `data`, cycling; `pos[0]` is the byte offset. */
function streamWord(data: Uint8Array, pos: Int32Array): number {
  let w = 0;
  for (let i = 0; i < 4; i++) {
    if ((pos[0] as number) >= data.length) pos[0] = 0;
    w = (w << 8) | (data[pos[0] as number] as number);
    pos[0] = (pos[0] as number) + 1;
  }
  return w;
}

/** Blowfish_expandstate (with salt) or Blowfish_expand0state (salt undefined). */
function expand(st: Int32Array, key: Uint8Array, salt: Uint8Array | undefined): void {
  const kp = new Int32Array(1);
  for (let i = 0; i < P; i++) st[i] = (st[i] as number) ^ streamWord(key, kp);
  const sp = new Int32Array(1);
  const lr = new Int32Array(2);
  for (let i = 0; i < st.length; i += 2) {
    if (salt) {
      lr[0] = (lr[0] as number) ^ streamWord(salt, sp);
      lr[1] = (lr[1] as number) ^ streamWord(salt, sp);
    }
    encipher(st, lr, 0);
    st[i] = lr[0] as number;
    st[i + 1] = lr[1] as number;
  }
}

const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const standard = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function decode64(s: string): Buffer {
  let t = "";
  for (const c of s) t += standard[alphabet.indexOf(c)];
  return Buffer.from(t, "base64");
}

/** The bcrypt hash format: `$2b$10$` + 22 characters of salt + 31 of hash. */
export const bcryptFormat = /^\$2[aby]\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;

/** The 23 hash bytes bcrypt derives from `password` with `cost` and a 16-byte `salt`. */
export async function bcryptRaw(password: string, cost: number, salt: Uint8Array): Promise<Buffer> {
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new RangeError(`bcrypt cost must be 4 to 31, got ${cost}`);
  initialState ??= piWords(P + 1024);
  const st = Int32Array.from(initialState);
  // $2b$ / $2y$: at most 72 bytes of the password, then its NUL terminator.
  const pw = Buffer.from(password, "utf8");
  const key = new Uint8Array(Math.min(pw.length, 72) + 1);
  key.set(pw.subarray(0, 72));
  expand(st, key, salt);
  const rounds = 2 ** cost;
  for (let i = 0; i < rounds; i++) {
    expand(st, key, undefined);
    expand(st, salt, undefined);
    if ((i & 31) === 31) await new Promise((r) => setImmediate(r));
  }
  const ctext = Buffer.from("OrpheanBeholderScryDoubt", "latin1");
  const cdata = new Int32Array(6);
  for (let i = 0; i < 6; i++) cdata[i] = ctext.readInt32BE(i * 4);
  for (let k = 0; k < 64; k++) for (let i = 0; i < 6; i += 2) encipher(st, cdata, i);
  const out = Buffer.alloc(24);
  for (let i = 0; i < 6; i++) out.writeInt32BE(cdata[i] as number, i * 4);
  return out.subarray(0, 23);
}

/** Checks `password` against a bcrypt hash; undefined when `hash` is not bcrypt. The caller compares in constant time. */
export async function bcryptCompute(password: string, hash: string): Promise<{ expected: Buffer; actual: Buffer } | undefined> {
  const m = bcryptFormat.exec(hash);
  if (!m) return undefined;
  const salt = decode64(m[2] as string).subarray(0, 16);
  const expected = decode64(m[3] as string).subarray(0, 23);
  return { expected, actual: await bcryptRaw(password, Number(m[1]), salt) };
}
