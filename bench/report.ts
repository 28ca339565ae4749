// `npm run bench -- report <folder>...`: the charts of results folders, drawn from their records (bench/charts.ts).
import { drawReport } from './charts.js';

const folders = process.argv.slice(2);
if (folders.length === 0) {
  console.error('usage: npm run bench -- report <results folder>...');
  process.exit(2);
}
for (const folder of folders) {
  const drawn = await drawReport(folder);
  for (const d of drawn) console.log(`${d.kind.padEnd(5)} ${d.dir}`);
  console.log(`drew the charts of ${drawn.length} folders under ${folder}`);
}
