/** A one-line progress bar on stderr, drawn only when stderr is a terminal. */
export class ProgressBar {
  private readonly tty = !!process.stderr.isTTY;
  private readonly start = Date.now();
  private lastDraw = 0;

  constructor(private readonly label: string) {}

  update(done: number, total: number, extra = ""): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const width = 30;
    const filled = total > 0 ? Math.round((done / total) * width) : 0;
    const secs = (now - this.start) / 1000;
    process.stderr.write(`\r${this.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${extra} ${secs.toFixed(1)}s\x1b[K`);
  }

  done(): void {
    if (this.tty) process.stderr.write("\n");
  }
}
