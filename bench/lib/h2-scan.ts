// Reading what etcd sends a client on a plaintext gRPC connection, for
// bench/scale's "bytes per foreign pod ADD": a byte stream from the server is
// cut into HTTP/2 frames (9-byte header: length, type, flags, stream id) and
// the bytes of every frame whose payload carries a watched-for string (a key
// prefix) are counted. A key etcd sends (a watch event, a range result) is
// always in clear in a DATA frame, so a count of 0 means no record under the
// prefix reached the client, whatever else (lease keep-alives) flowed.
// Invariants: frames split across TCP reads are reassembled; a needle split
// across two DATA frames of one stream is still found (the stream's last
// bytes are kept and searched with the next frame).

const DATA = 0x0;
const HEADER = 9;

export class H2Scan {
  /** Bytes of frames in which the needle (ended) was found. */
  matchedBytes = 0;
  /** Frames in which the needle was found. */
  matchedFrames = 0;
  private pending: Buffer = Buffer.alloc(0);
  private readonly tails = new Map<number, Buffer>();
  private needle: Buffer | undefined;

  /** `needle()` says what to look for now (undefined: nothing yet). */
  constructor(private readonly current: () => string | undefined) {}

  /** Feed bytes the server sent, in order. */
  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= HEADER) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < HEADER + length) break;
      const type = this.pending[3];
      const stream = this.pending.readUInt32BE(5) & 0x7fffffff;
      const payload = this.pending.subarray(HEADER, HEADER + length);
      if (type === DATA) this.scan(stream, payload, HEADER + length);
      this.pending = this.pending.subarray(HEADER + length);
    }
  }

  private scan(stream: number, payload: Buffer, frameBytes: number): void {
    const want = this.current();
    if (want === undefined) return;
    if (this.needle?.toString() !== want) {
      this.needle = Buffer.from(want);
      this.tails.clear();
    }
    const tail = this.tails.get(stream) ?? Buffer.alloc(0);
    const text = Buffer.concat([tail, payload]);
    // The tail is shorter than the needle: a match always ends in this payload.
    if (text.includes(this.needle)) {
      this.matchedBytes += frameBytes;
      this.matchedFrames += 1;
    }
    this.tails.set(stream, Buffer.from(text.subarray(Math.max(0, text.length - this.needle.length + 1))));
  }
}
