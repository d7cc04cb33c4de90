const data = JSON.parse(document.getElementById('data').textContent);
const byIndex = new Map(data.frames.map(f => [f.i, f]));
let playing = null;
function stopPlaying() { if (playing) { clearInterval(playing.timer); playing.button.textContent = 'Play'; playing = null; } }
function player(slider, show, button) {
  button.addEventListener('click', () => {
    if (playing && playing.button === button) { stopPlaying(); return; }
    stopPlaying();
    button.textContent = 'Pause';
    playing = {button, timer: setInterval(() => {
      slider.value = (Number(slider.value) + 1) % (Number(slider.max) + 1); show(Number(slider.value));
    }, 1000 / Math.min(Math.max(data.fps, 1), 30))};
  });
  slider.addEventListener('input', () => show(Number(slider.value)));
}
// source and output side by side, one clock
const sync = document.getElementById('sync');
if (sync && data.frames.length) {
  const slider = sync.querySelector('input'), label = sync.querySelector('.frame-number');
  slider.max = data.frames.length - 1;
  const show = n => { const f = data.frames[n];
    document.getElementById('sync-out').src = f.thumb;
    const src = document.getElementById('sync-src'); if (f.src) src.src = f.src;
    label.textContent = 'frame ' + f.i; };
  show(0); player(slider, show, sync.querySelector('button'));
}
// a frame's details
const dialog = document.getElementById('frame');
function cell(text) { const td = document.createElement('td'); td.textContent = text; return td; }
function figure(src, caption) {
  const fig = document.createElement('figure'), img = document.createElement('img');
  img.src = src; img.alt = caption; const cap = document.createElement('figcaption');
  cap.textContent = caption; fig.append(img, cap); return fig;
}
function openFrame(i) {
  const f = byIndex.get(i); if (!f) return;
  stopPlaying();
  dialog.querySelector('h3').textContent = 'Frame ' + f.i + ' — ' + f.origin;
  const images = dialog.querySelector('.images'); images.replaceChildren(figure(f.file, 'output'));
  if (f.src) images.append(figure(f.src, 'source'));
  if (f.mask) images.append(figure(f.mask, 'mask'));
  for (const [what, src] of f.maps) images.append(figure(src, what));
  const table = dialog.querySelector('table'); table.replaceChildren();
  const rows = Object.entries(f.record.row || {}).concat(
    Object.entries(f.record).filter(([k]) => !['row', 'file', 'index'].includes(k)));
  for (const [k, v] of rows) { if (v === null || v === '') continue;
    const tr = document.createElement('tr');
    tr.append(cell(k), cell(typeof v === 'object' ? JSON.stringify(v) : String(v))); table.append(tr); }
  dialog.querySelector('pre').textContent = f.parameters || '';
  dialog.querySelector('a.full').href = f.file;
  dialog.showModal();
}
document.querySelectorAll('.thumb').forEach(t => t.addEventListener('click', () => openFrame(Number(t.dataset.i))));
dialog.querySelector('button.close').addEventListener('click', () => dialog.close());
// chart hover: the values at the frame under the pointer
document.querySelectorAll('.chart-box').forEach(box => {
  const out = box.querySelector('.readout');
  box.querySelectorAll('.hover').forEach(r => r.addEventListener('mouseenter', () => { out.textContent = r.dataset.tip; }));
});
// A/B wipe: an earlier look against the current one, played in sync
const wipe = document.getElementById('wipe');
if (wipe && data.looks.length) {
  const pick = wipe.querySelector('select'), split = wipe.querySelector('.split');
  const slider = wipe.querySelector('.frames'), a = wipe.querySelector('img.a'), b = wipe.querySelector('img.b');
  const edge = wipe.querySelector('.edge'), label = wipe.querySelector('.frame-number');
  const indices = data.frames.map(f => f.i).filter(i => data.looks.some(l => String(i) in l.frames));
  slider.max = Math.max(indices.length - 1, 0);
  const show = n => { const i = indices[n]; const look = data.looks[Number(pick.value)];
    if (i === undefined) return;
    a.src = look.frames[String(i)] || ''; b.src = byIndex.get(i).thumb;
    label.textContent = 'frame ' + i; wipe.dataset.shown = String(i); };
  const cut = () => { b.style.clipPath = 'inset(0 0 0 ' + split.value + '%)'; edge.style.left = split.value + '%'; };
  split.addEventListener('input', cut); pick.addEventListener('change', () => show(Number(slider.value)));
  cut(); show(0); player(slider, show, wipe.querySelector('button'));
}
// a running job's page that has not changed for a while: the job may have been killed
const age = (Date.now() - data.written) / 1000;
if (data.running && age > data.stale) {
  document.getElementById('freshness').textContent = 'Not updated for ' + Math.round(age / 60) +
    ' min: the job may have stopped without writing its last page (killed?).';
}
// a running job's page reloads itself, unless someone is looking at something
if (data.running) setTimeout(function again() {
  if (dialog.open || playing) { setTimeout(again, 1000); return; }
  sessionStorage.setItem('scroll', String(window.scrollY)); location.reload();
}, data.reload * 1000);
const scroll = sessionStorage.getItem('scroll');
if (scroll) { window.scrollTo(0, Number(scroll)); sessionStorage.removeItem('scroll'); }
