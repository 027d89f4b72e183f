"""Feed-forward networks trained with perceptual losses (Johnson et al. 2016): model files with an architecture
registry (:mod:`.model`), training (:mod:`.train`, data in :mod:`.data`), applying to images, folders and videos
(:mod:`.apply`), and ONNX export (:mod:`.export`)."""
