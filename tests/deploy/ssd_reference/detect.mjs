// face-api's own SSD-MobileNetV1 detector (TensorFlow.js in node), the
// reference of tests/deploy/test_ssd_detector.cpp and `qface bench detect`.
// usage: node detect.mjs cpu|wasm MIN_SCORE photo.rgb:WIDTH:HEIGHT ...
// Each photo is raw 8-bit RGB (decoded by qface, so both see the same
// pixels); prints one JSON list: per photo the faces (x, y, w, h in pixels,
// score) and the milliseconds detectAllFaces took.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'module';
import fs from 'fs';
const require = createRequire(import.meta.url);
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const [backend, minConf, ...files] = process.argv.slice(2);
await faceapi.tf.setBackend(backend); await faceapi.tf.ready();
await faceapi.nets.ssdMobilenetv1.loadFromDisk(new URL('node_modules/@vladmandic/face-api/model', import.meta.url).pathname);
const opts = new faceapi.SsdMobilenetv1Options({ minConfidence: Number(minConf), maxResults: 100 });
const out = [];
for (const spec of files) {
  const [f, w, h] = spec.split(':');
  const buf = fs.readFileSync(f);
  const t = faceapi.tf.tensor3d(new Uint8Array(buf), [Number(h), Number(w), 3], 'int32');
  const t0 = process.hrtime.bigint();
  const dets = await faceapi.detectAllFaces(t, opts);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.dispose();
  out.push({ file: f, ms, faces: dets.map(d => ({ x: d.box.x, y: d.box.y, w: d.box.width, h: d.box.height, score: d.score })) });
}
console.log(JSON.stringify(out));
