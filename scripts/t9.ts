import { confirmOnTerminal } from './lib/cli.ts';

const t = setTimeout(() => { console.error('STILL WAITING after 3s'); process.exit(7); }, 3000);
const a = await confirmOnTerminal('Deploy?');
clearTimeout(t);
console.error('answer', a);
