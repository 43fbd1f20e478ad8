// Live results: the server pushes a poll's counts (Server-Sent Events)
// whenever a worker commits a change. No polling, no reload.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var polls = document.getElementById("polls");

  function pct(n, total) { return total === 0 ? 0 : (n * 100) / total; }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; // text only: data is never parsed as HTML
    return e;
  }

  function section(s) {
    var sec = polls.querySelector('section[data-poll="' + CSS.escape(s.poll) + '"]');
    if (sec) return sec;
    sec = el("section", "poll");
    sec.id = "poll-" + s.poll;
    sec.dataset.poll = s.poll;
    sec.appendChild(el("h2", "", s.title || s.poll));
    var p = el("p", "", "Total votes: ");
    p.appendChild(el("strong", "total", "0"));
    p.appendChild(document.createTextNode(" · last update "));
    p.appendChild(el("time", "updated", ""));
    sec.appendChild(p);
    sec.appendChild(el("ul", "bars"));
    polls.appendChild(sec);
    return sec;
  }

  function row(sec, option) {
    var li = sec.querySelector('li[data-option="' + CSS.escape(option) + '"]');
    if (li) return li;
    li = el("li");
    li.dataset.option = option;
    li.appendChild(el("span", "label", option));
    var track = el("span", "track");
    track.appendChild(el("span", "bar"));
    li.appendChild(track);
    li.appendChild(el("span", "count", "0"));
    li.appendChild(el("span", "pct", "0.0%"));
    sec.querySelector(".bars").appendChild(li);
    return li;
  }

  function update(s) {
    var sec = section(s);
    var options = s.options && s.options.length ? s.options : Object.keys(s.counts);
    sec.querySelector(".total").textContent = String(s.total);
    options.forEach(function (o) {
      var n = s.counts[o] || 0, li = row(sec, o), p = pct(n, s.total);
      li.querySelector(".count").textContent = String(n);
      li.querySelector(".pct").textContent = p.toFixed(1) + "%";
      li.querySelector(".bar").style.width = p.toFixed(1) + "%";
    });
    var t = sec.querySelector("time.updated"), d = new Date(s.updated_at);
    t.dateTime = s.updated_at;
    t.textContent = d.toISOString().substring(11, 19) + " UTC";
  }

  // The page comes with each bar's share; the CSP forbids inline styles,
  // so the width is set here.
  polls.querySelectorAll(".bar[data-pct]").forEach(function (b) { b.style.width = b.dataset.pct + "%"; });

  function connect() {
    var es = new EventSource("/results/api/stream");
    es.addEventListener("open", function () { live.textContent = "● Live: updates appear as votes are counted"; live.className = "live on"; });
    es.addEventListener("error", function () {
      live.textContent = "Reconnecting…"; live.className = "live off";
      // A refused stream (503: too many) is closed for good; try again
      // later, spread out so refused pages do not come back at once.
      if (es.readyState === EventSource.CLOSED) { setTimeout(connect, 5000 + Math.random() * 10000); }
    });
    es.addEventListener("results", function (e) { update(JSON.parse(e.data)); });
  }
  connect();
})();
