"""The ground floor: what every method shares and nothing else builds on.

One error base (:mod:`.errors`), one options mechanism (:mod:`.options`), progress events (:mod:`.events`),
atomic writes (:mod:`.atomic`), image files, resizing and conversion (:mod:`.images`), video files
(:mod:`.video`), device and precision (:mod:`.device`), the record each output carries (:mod:`.record`),
labelled figures (:mod:`.figures`) and the embedded sample images (:mod:`.samples`). Imports nothing else of
stylegram.
"""
