// Follows a pending order until a worker has confirmed or rejected it.
(function () {
  "use strict";
  var status = document.getElementById("status");
  if (!status || !status.classList.contains("status-pending")) return;
  var id = status.dataset.order, tries = 0;
  var text = {
    confirmed: "Confirmed. Thank you for your order!",
    out_of_stock: "Rejected: sold out before your order was processed.",
    unknown_item: "Rejected: this item does not exist."
  };
  function check() {
    if (++tries > 240) return; // give up after about two minutes
    fetch("/orders/" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (o) {
        if (!o || o.status === "pending") { setTimeout(check, 500); return; }
        status.className = "order-status status-" + o.status;
        status.textContent = o.status === "confirmed" ? text.confirmed : (text[o.reason] || "Rejected.");
      })
      .catch(function () { setTimeout(check, 1000); });
  }
  setTimeout(check, 300);
})();
