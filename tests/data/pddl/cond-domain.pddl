;; Uses a conditional effect, outside the STRIPS fragment: loading it must fail with a clear error.
(define (domain cond)
  (:requirements :strips :conditional-effects)
  (:predicates (p ?x) (q ?x))
  (:action a
    :parameters (?x)
    :precondition (p ?x)
    :effect (when (q ?x) (not (p ?x)))))
