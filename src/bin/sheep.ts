#!/usr/bin/env node
// Sheepdog-compatible form: sheep DIR [options] (= sheep-actors start DIR [options]).
import { main } from '../cli/sheep-actors.js';
await main(process.argv.slice(2), 'sheep');
