// The queue's "Select all": shown only where scripts run; ticks or clears every row's box.
const all = document.getElementById('select-all')
if (all) {
  const boxes = () => document.querySelectorAll('input.app-select[name="item"]')
  all.hidden = false
  all.parentElement.querySelector('label').hidden = false
  all.addEventListener('change', () => {
    boxes().forEach((box) => { box.checked = all.checked })
  })
}
