// Fuzzing the pod address record decoder (see record-targets.ts).
import t from 'tap';
import { fuzzRecord } from './record-targets.js';

fuzzRecord(t, 'PodAddress');
