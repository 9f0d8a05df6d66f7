// Fuzzing the advertisement decoder and check (see record-targets.ts).
import t from 'tap';
import { fuzzRecord } from './record-targets.js';

fuzzRecord(t, 'Advertisement');
