"""Everything that exists only for the book (the ``book`` extra: pandas, plotly, papermill, jupyter-book).

- :mod:`mcef.book.runner`: ``mcef book``, which executes the notebooks and builds the Jupyter Book.
- :mod:`mcef.book.common`: what every chapter shares (profiles, data, header, runs from the run store, figures' look).
- One module per chapter: :mod:`~mcef.book.exploration` (1), :mod:`~mcef.book.architecture` (2),
  :mod:`~mcef.book.hgr_analysis` (3), :mod:`~mcef.book.reporting` (4), :mod:`~mcef.book.ablations` (5),
  :mod:`~mcef.book.robustness` (6), :mod:`~mcef.book.real_results` (7). A chapter module imports the library and
  :mod:`mcef.book.common`, never another chapter module: one chapter reads another's runs from the run store.

The library (``mcef`` outside this package) imports nothing from here, nor pandas or plotly.
"""
