// Follows a pending order until a worker has confirmed or rejected it,
// then reloads the page once to show its lines and total.
(function () {
  "use strict";
  var status = document.getElementById("status");
  if (!status || !status.classList.contains("status-pending")) return;
  var id = status.dataset.order, tries = 0;
  var text = {
    confirmed: "Confirmed. Thank you for your order!",
    out_of_stock: "Rejected: sold out before your order was processed. Nothing was taken.",
    unknown_item: "Rejected: an item of this order does not exist. Nothing was taken."
  };
  function check() {
    if (++tries > 240) return; // give up after about two minutes
    fetch("/orders/" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (o) {
        if (!o || o.status === "pending") { setTimeout(check, 500); return; }
        // Marked first: the decision shown here is about to be replaced by
        // the reloaded page (tests wait for an unmarked, decided status).
        status.dataset.reloading = "1";
        status.className = "order-status status-" + o.status;
        status.textContent = o.status === "confirmed" ? text.confirmed : (text[o.reason] || "Rejected.");
        location.reload(); // the page as decided: lines, prices and total
      })
      .catch(function () { setTimeout(check, 1000); });
  }
  setTimeout(check, 300);
})();
