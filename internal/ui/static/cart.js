// The cart, held in this browser (localStorage, item id -> quantity). The
// shop's "Add to cart" buttons fill it; the cart page shows its lines with
// their prices and total from the catalogue, lets the buyer change
// quantities, and checks out: one POST /orders with every line, under the
// fresh order id the page came with (a double submit is one order).
(function () {
  "use strict";
  var KEY = "surge.cart", MAX_LINES = 20, MAX_QTY = 100;

  function load() {
    try {
      var c = JSON.parse(localStorage.getItem(KEY) || "{}");
      return c && typeof c === "object" && !Array.isArray(c) ? c : {};
    } catch (e) { return {}; }
  }
  function save(c) { localStorage.setItem(KEY, JSON.stringify(c)); }
  function count(c) { return Object.keys(c).length; }
  function clamp(q) { q = parseInt(q, 10); return isNaN(q) || q < 1 ? 1 : (q > MAX_QTY ? MAX_QTY : q); }
  // Prices are exact decimal strings ("12.50"): sum them in cents.
  function cents(price) {
    var p = String(price).split(".");
    return parseInt(p[0], 10) * 100 + parseInt(((p[1] || "") + "00").slice(0, 2), 10);
  }
  function money(c) { var r = String(c % 100); return Math.floor(c / 100) + "." + (r.length < 2 ? "0" + r : r); }
  function setText(id, s) { var el = document.getElementById(id); if (el) el.textContent = s; }

  // The shop: "Add to cart" takes the quantity of the item's buy form.
  function shop() {
    setText("cart-count", count(load()));
    document.querySelectorAll("button.add-to-cart").forEach(function (b) {
      b.addEventListener("click", function () {
        var c = load(), item = b.dataset.item, input = b.form.querySelector('input[name="quantity"]');
        if (!(item in c) && count(c) >= MAX_LINES) {
          setText("cart-notice", "Your cart is full (" + MAX_LINES + " lines).");
          return;
        }
        c[item] = clamp((c[item] || 0) + clamp(input ? input.value : 1));
        save(c);
        setText("cart-count", count(c));
        var name = b.closest("li").querySelector("h2").textContent;
        setText("cart-notice", "Added to your cart: " + name + " × " + c[item] + ".");
      });
    });
  }

  // The cart page.
  function cartPage(form) {
    var body = form.querySelector("tbody"), items = {};
    function render() {
      var c = load(), total = 0;
      body.textContent = "";
      Object.keys(c).forEach(function (id) {
        var it = items[id];
        if (!it) { delete c[id]; return; } // no longer in the catalogue
        var tr = document.createElement("tr"), q = clamp(c[id]);
        tr.className = "line";
        tr.dataset.item = id;
        var name = document.createElement("td"); name.textContent = it.name;
        var price = document.createElement("td"); price.className = "price"; price.textContent = it.price;
        var qty = document.createElement("td"), input = document.createElement("input");
        input.type = "number"; input.min = "1"; input.max = String(MAX_QTY); input.value = String(q);
        input.name = "quantity"; input.id = "cart-qty-" + id; input.setAttribute("aria-label", "Quantity of " + it.name);
        input.addEventListener("change", function () { var c2 = load(); c2[id] = clamp(input.value); save(c2); render(); });
        qty.appendChild(input);
        var rm = document.createElement("td"), btn = document.createElement("button");
        btn.type = "button"; btn.className = "remove"; btn.textContent = "Remove";
        btn.setAttribute("aria-label", "Remove " + it.name);
        btn.addEventListener("click", function () { var c2 = load(); delete c2[id]; save(c2); render(); });
        rm.appendChild(btn);
        tr.append(name, price, qty, rm);
        body.appendChild(tr);
        total += cents(it.price) * q;
      });
      save(c);
      var empty = count(c) === 0;
      form.hidden = empty;
      document.getElementById("cart-empty").hidden = !empty;
      setText("cart-total", money(total));
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var c = load(), lines = Object.keys(c).map(function (id) { return { item: Number(id), quantity: clamp(c[id]) }; });
      var button = document.getElementById("checkout-button"), id = form.dataset.orderId;
      button.disabled = true;
      setText("cart-error", "");
      fetch("/orders", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ order_id: id, lines: lines })
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (o) {
          if (r.status !== 202) throw new Error(o.error || ("the shop answered " + r.status));
          localStorage.removeItem(KEY);
          location.assign("/orders/" + encodeURIComponent(o.order_id || id));
        });
      }).catch(function (e) {
        setText("cart-error", "Your order was not taken: " + e.message);
        button.disabled = false;
      });
    });
    fetch("/api/items", { headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(); return r.json(); })
      .then(function (list) { list.forEach(function (it) { items[String(it.id)] = it; }); render(); })
      .catch(function () { setText("cart-error", "The catalogue is unavailable right now; please try again."); form.hidden = false; });
  }

  // A page restored from the back/forward cache would reuse a spent order id.
  window.addEventListener("pageshow", function (e) { if (e.persisted) location.reload(); });
  var form = document.getElementById("checkout");
  if (form) cartPage(form); else shop();
})();
