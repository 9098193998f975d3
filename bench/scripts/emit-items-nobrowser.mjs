// Benchmark script: awaits job.n small item emits, one after another, with no browser (SPEC §13).
export const options = { browser: false };

export default async function emitItems(ctx) {
  const n = ctx.job.n;
  for (let i = 0; i < n; i++) {
    await ctx.emit.item({ item_type: 'bench', data: { i, name: 'item', price_cents: 1299, tags: ['a', 'b'] } });
  }
}
