// Copy buttons: shown only where the clipboard can be written; the URL
// beside each stays selectable without them.
(function () {
  'use strict';
  if (!navigator.clipboard) return;
  document.querySelectorAll('.copy-button').forEach(function (b) {
    b.hidden = false;
    b.addEventListener('click', function () {
      navigator.clipboard.writeText(b.dataset.copy).then(function () {
        b.textContent = 'Copied';
        setTimeout(function () { b.textContent = 'Copy'; }, 1500);
      }, function () {
        b.textContent = 'Select and copy';
      });
    });
  });
})();
