// Typesets the formulas of the page with the KaTeX that the site ships (docs/vendor/katex/), so they render
// without network. pymdownx.arithmatex (generic mode) writes them as
//   <span class="arithmatex">\( ... \)</span>   (inline, $...$ in the Markdown)
//   <div class="arithmatex">\[ ... \]</div>     (display, $$...$$ in the Markdown)
// and only those elements are touched. A formula KaTeX cannot parse stays visible as its TeX source, marked
// in red (throwOnError: false); tests/test_docs_site.py builds the site and checks that the pages load this.
(function () {
  "use strict";

  function typeset(root) {
    if (typeof katex === "undefined") {
      return;
    }
    var elements = (root || document).querySelectorAll(".arithmatex");
    for (var i = 0; i < elements.length; i++) {
      var element = elements[i];
      if (element.getAttribute("data-katex") === "done") {
        continue;
      }
      var tex = element.textContent.trim();
      var display = element.tagName === "DIV";
      if (tex.slice(0, 2) === "\\(" || tex.slice(0, 2) === "\\[") {
        display = tex.charAt(1) === "[";
        tex = tex.slice(2, -2);
      }
      katex.render(tex, element, {
        displayMode: display,
        throwOnError: false,
        errorColor: "#cc0000",
        strict: "ignore",
        output: "htmlAndMathml",
      });
      element.setAttribute("data-katex", "done");
    }
  }

  // Material for MkDocs emits document$ for every page shown (also with instant navigation); without it, typeset
  // once the page has loaded.
  if (typeof document$ !== "undefined" && document$.subscribe) {
    document$.subscribe(function () {
      typeset(document);
    });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      typeset(document);
    });
  } else {
    typeset(document);
  }
})();
